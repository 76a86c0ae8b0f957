import responses as responses_lib
from tests.admin.test_key_spend import *  # noqa

@responses_lib.activate
def test_dbg(app, route, caplog):
    responses_lib.post(CHAT_URL, json=reply())
    key, raw = make_key(limits={"rpm": 1}, budget={"amount_usd": "0.001", "period": "day"})
    gw = app.test_client()
    r = gw.post("/v1/chat/completions", headers={"Authorization": f"Bearer {raw}"}, json=BODY)
    print(r.status_code, r.get_data(as_text=True)[:300])
    from app.services import spend_view
    print(spend_view.key_state(key))
    print([ (u.status_code, u.cost_usd, u.error_class) for u in db.session.scalars(db.select(UsageRecord))])
    print(caplog.text[-3000:])
