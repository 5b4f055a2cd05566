def test_authen_returns_token(client, tenant_a, tenant_b):
    response = client.post(
        "/api/accounts/authen",
        {"username": tenant_a.username, "apiKey": tenant_a.raw_key, "cdpGKey": tenant_a.group_key},
        format="json",
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["expiredAt"] - body["issuedAt"] == 1800000
    assert response["X-Request-Id"]
