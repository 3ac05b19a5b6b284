"""Calls a running portal through the client that openapi-python-client generated
from its /api/openapi.json. Usage: openapi_client_check.py CLIENT_DIR PORTAL_URL API_KEY.

Proves the document is usable, not only valid: typed success answers parse into the
generated models, and errors parse into the Problem model."""
import sys

client_dir, portal, key = sys.argv[1:4]
sys.path.insert(0, client_dir)

from fc_api import AuthenticatedClient  # noqa: E402
from fc_api.api.default import list_devices, me, series_range, usage  # noqa: E402
from fc_api.models import Me, Problem, Usage  # noqa: E402

client = AuthenticatedClient(base_url=portal, token=key, raise_on_unexpected_status=True)

r = me.sync_detailed(client=client)
assert r.status_code == 200 and isinstance(r.parsed, Me), (r.status_code, r.content)
assert r.parsed.plan == "growth" and r.parsed.role == "operator", r.parsed

u = usage.sync_detailed(client=client)
assert u.status_code == 200 and isinstance(u.parsed, Usage), (u.status_code, u.content)

d = list_devices.sync_detailed(client=client)
assert d.status_code == 200 and isinstance(d.parsed, list), (d.status_code, d.content)

missing = series_range.sync_detailed("no-such-machine", "temperature", client=client)
assert missing.status_code == 404 and isinstance(missing.parsed, Problem), (missing.status_code, missing.content)
assert missing.parsed.status == 404, missing.parsed

bad = series_range.sync_detailed("m", "t", client=client, start_ms=10, end_ms=5)
assert bad.status_code == 400 and isinstance(bad.parsed, Problem), (bad.status_code, bad.content)
assert "start_ms" in bad.parsed.detail or "end_ms" in bad.parsed.detail, bad.parsed.detail

stranger = AuthenticatedClient(base_url=portal, token="fck_not_a_key", raise_on_unexpected_status=True)
denied = me.sync_detailed(client=stranger)
assert denied.status_code == 401 and isinstance(denied.parsed, Problem), (denied.status_code, denied.content)

print("generated client: me, usage, devices, 404, 400 and 401 parsed as documented")
