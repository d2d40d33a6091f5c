"""End-to-end encryption support: https://spec.matrix.org/latest/client-server-api/#end-to-end-encryption

- `device_keys.py`: /keys/upload, /keys/query, /keys/claim, /keys/changes.
- `cross_signing.py`: /keys/device_signing/upload and /keys/signatures/upload.
- `device_lists.py`: the device-list stream, and what /sync reads of all this.
- `key_backup.py`: server-side key backups.
- `dehydrated_devices.py`: dehydrated devices (MSC3814).

The server never sees private keys; it checks that what it publishes is signed by the
keys it claims to be signed by, hands each one-time key out once, and tells the users
sharing a room with someone when that someone's devices or cross-signing keys change.
"""
