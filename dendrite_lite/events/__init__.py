"""The pure event layer: Matrix events as data, with no I/O, HTTP or database.

Spec: https://spec.matrix.org/latest/rooms/ (room versions) and
https://spec.matrix.org/latest/appendices/ (canonical JSON, signing, identifiers).

Modules, from the bottom up:

* :mod:`.canonical_json` - canonical JSON encoding and strict decoding
* :mod:`.signing` - unpadded base64, ed25519 server keys, signed JSON
* :mod:`.identifiers` - server name / user ID grammar, domains of IDs
* :mod:`.room_versions` - ``RoomVersion`` flags for versions 1-12
* :mod:`.redaction` - the redaction algorithm per version
* :mod:`.hashes` - content hashes, reference hashes, event IDs, v12 room IDs
* :mod:`.event_signing` - signing events and who must have signed them
* :mod:`.pdu` - the ``Pdu`` view, size limits, building and finalising events
* :mod:`.auth_rules` - the authorisation rules of every version
* :mod:`.state_res` - state resolution v1, v2 and v2.1
"""
