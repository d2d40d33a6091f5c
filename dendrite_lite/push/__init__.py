"""Push notifications: push rules, their evaluation, notification counts and pushers.

https://spec.matrix.org/latest/client-server-api/#push-notifications
https://spec.matrix.org/latest/push-gateway-api/

- `rules.py`: the rule model, validation of client input and the JSON shapes.
- `defaults.py`: the server-default rules of the current spec, in order.
- `glob.py`: glob matching (whole values, and `content.body` at word boundaries) in
  linear time, so no pattern can stall the writer thread.
- `evaluator.py`: rules compiled once per user (`RuleCache`), evaluated per event.
- `hook.py`: runs inside the send path's write unit: evaluates every local recipient
  and records notifications and counts.
- `service.py`: the push rules, /notifications and pushers APIs.
- `gateway.py` and `sender.py`: delivery to HTTP push gateways in the background.
"""
