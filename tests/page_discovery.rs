//! Messenger pages the way Meta hands them out: a Facebook user token lists the pages it manages
//! (`GET /me/accounts`, followed over its result pages) and connects one, kamshub taking the
//! page's token from Graph. Through the API of a running `kamshub serve` and through the CLI,
//! every log at trace level: the user and page tokens appear in no output, log or file.

mod common;

use common::api::Api;
use common::cli::{Kamshub, any_file_contains};
use common::daemon::Daemon;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const USER_TOKEN: &str = "EAAUcanaryUserToken7f3a";
/// (page id, name, the page token Graph hands out for it).
const PAGES: [(&str, &str, &str); 2] = [
    ("104857600011111", "Acme Support", "EAAPcanaryPageOne11aa"),
    ("104857600022222", "Acme Sales", "EAAPcanaryPageTwo22bb"),
];

/// A Graph API with the two pages over two result pages of `/me/accounts`, as Meta pages them
/// (a `next` link that carries the token, cursors), and `subscribed_apps` for each page token.
async fn fake_graph() -> MockServer {
    let server = MockServer::start().await;
    let account = |(id, name, token): (&str, &str, &str)| json!({"id": id, "name": name, "access_token": token, "tasks": ["MESSAGING"]});
    Mock::given(method("GET"))
        .and(path("/v21.0/me/accounts"))
        .and(header("authorization", format!("Bearer {USER_TOKEN}").as_str()))
        .and(query_param("after", "QVFIcursor2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [account(PAGES[1])],
            "paging": {"cursors": {"before": "QVFIcursor2", "after": "QVFIcursor2"}}
        })))
        .mount(&server)
        .await;
    let next = format!("{}/v21.0/me/accounts?access_token={USER_TOKEN}&limit=1&after=QVFIcursor2", server.uri());
    Mock::given(method("GET"))
        .and(path("/v21.0/me/accounts"))
        .and(header("authorization", format!("Bearer {USER_TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "data": [account(PAGES[0])],
            "paging": {"cursors": {"before": "QVFIcursor1", "after": "QVFIcursor2"}, "next": next}
        })))
        .with_priority(5)
        .mount(&server)
        .await;
    Mock::given(path("/v21.0/me/accounts"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Invalid OAuth access token - Cannot parse access token", "type": "OAuthException", "code": 190
        }})))
        .with_priority(10)
        .mount(&server)
        .await;
    for (id, _, token) in PAGES {
        Mock::given(method("POST"))
            .and(path(format!("/v21.0/{id}/subscribed_apps")))
            .and(body_string_contains(format!("access_token={token}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"success": true})))
            .mount(&server)
            .await;
    }
    server
}

/// The page tokens each `subscribed_apps` call carried, in order.
async fn subscribed(graph: &MockServer) -> Vec<String> {
    let calls = graph.received_requests().await.unwrap();
    let tokens = calls.iter().filter(|r| r.url.path().ends_with("/subscribed_apps")).map(|r| {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        PAGES.iter().find(|(_, _, t)| body.contains(t)).map(|(_, _, t)| (*t).to_owned()).unwrap_or(body)
    });
    tokens.collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_token_lists_its_pages_and_connects_one_and_no_token_shows_anywhere() {
    let graph = fake_graph().await;
    let graph_base = format!("{}/v21.0", graph.uri());
    let k = Kamshub::embedded("http://127.0.0.1:9", &graph_base).with("KAMSHUB_LOG", "trace");
    let tenant = k.json(&["tenant", "create", "--name", "Acme", "--admin-email", "boss@acme.example"]);
    let (tenant_id, temporary) = (
        tenant["tenantId"].as_str().unwrap().to_owned(),
        tenant["admin"]["temporaryPassword"].as_str().unwrap().to_owned(),
    );

    // The API of a running daemon.
    let data_dir = k.data_dir().display().to_string();
    let env = [
        ("KAMSHUB_DATA_DIR", data_dir.as_str()),
        ("KAMSHUB_PROVIDERS__GRAPH_API_BASE", graph_base.as_str()),
        ("KAMSHUB_LOG", "trace"),
    ];
    let mut daemon = Daemon::start(k.dir.path(), &env);
    let api = Api::new(format!("http://{}", daemon.address()));
    let token = api.first_sign_in("boss@acme.example", &temporary).await["idToken"].as_str().unwrap().to_owned();
    let mut answers = String::new();
    let listed = api
        .http
        .get(format!("{}/tenant/channels/messenger/pages", api.base))
        .bearer_auth(&token)
        .header("X-Facebook-User-Token", USER_TOKEN)
        .send()
        .await
        .unwrap();
    let listed = common::api::answer(listed).await;
    answers.push_str(&listed.text);
    assert_eq!(listed.status, 200, "{}", listed.text);
    let expected: Value = json!([
        {"pageId": PAGES[0].0, "name": PAGES[0].1},
        {"pageId": PAGES[1].0, "name": PAGES[1].1},
    ]);
    assert_eq!(listed.body["items"], expected, "both result pages of /me/accounts");
    let missing = api.get("/tenant/channels/messenger/pages", &token).await;
    assert_eq!(missing.status, 400, "the user token is required: {}", missing.text);
    let bad = api
        .http
        .get(format!("{}/tenant/channels/messenger/pages", api.base))
        .bearer_auth(&token)
        .header("X-Facebook-User-Token", "EAAUexpired")
        .send()
        .await
        .unwrap();
    let bad = common::api::answer(bad).await;
    assert_eq!(
        (bad.status.as_u16(), bad.body["error"]["code"].as_str()),
        (422, Some("provider_refused")),
        "{}",
        bad.text
    );

    let body = json!({"type": "messenger", "displayName": "Sales", "pageId": PAGES[1].0, "userToken": USER_TOKEN});
    let connected = api.post("/tenant/channels", Some(&token), &body).await;
    answers.push_str(&connected.text);
    assert_eq!(connected.status, 201, "{}", connected.text);
    assert_eq!(
        (connected.body["externalId"].as_str(), connected.body["type"].as_str()),
        (Some(PAGES[1].0), Some("messenger"))
    );
    assert_eq!(subscribed(&graph).await, [PAGES[1].2], "subscribed with the page's own token, taken from Graph");
    let unmanaged =
        json!({"type": "messenger", "displayName": "X", "pageId": "104857600099999", "userToken": USER_TOKEN});
    let refused = api.post("/tenant/channels", Some(&token), &unmanaged).await;
    assert_eq!((refused.status.as_u16(), refused.body["error"]["code"].as_str()), (422, Some("invalid_request")));
    let both = json!({"type": "messenger", "displayName": "X", "pageId": PAGES[0].0, "userToken": USER_TOKEN, "pageToken": "x"});
    assert_eq!(api.post("/tenant/channels", Some(&token), &both).await.status, 422);
    let (status, log) = daemon.terminate();
    assert_eq!(status.code(), Some(0));

    // The CLI: list, then connect the other page.
    let pages =
        k.run_with_stdin(&["-o", "json", "channel", "pages", "--tenant", &tenant_id, "--user-token", "-"], USER_TOKEN);
    assert_eq!(pages.json(), expected);
    let added = k.run_with_stdin(
        &[
            "-o",
            "json",
            "channel",
            "add",
            "--tenant",
            &tenant_id,
            "--type",
            "messenger",
            "--display-name",
            "Support",
            "--page-id",
            PAGES[0].0,
            "--user-token",
            "-",
        ],
        USER_TOKEN,
    );
    assert_eq!(added.json()["externalId"], PAGES[0].0);
    assert_eq!(subscribed(&graph).await, [PAGES[1].2, PAGES[0].2]);
    let channels = k.json(&["channel", "list", "--tenant", &tenant_id]);
    assert_eq!(channels.as_array().unwrap().len(), 2);

    // No token anywhere: daemon log (trace), CLI output and logs (trace), API answers, files.
    let log = log.join("\n");
    let printed = k.printed.borrow().clone();
    assert!(log.contains("TRACE") || log.contains("DEBUG"), "the daemon logged at trace level");
    for secret in [USER_TOKEN, PAGES[0].2, PAGES[1].2] {
        assert!(!log.contains(secret), "{secret} in the daemon's log");
        assert!(!printed.contains(secret), "{secret} printed by the CLI");
        assert!(!answers.contains(secret), "{secret} in an API answer");
        assert!(!any_file_contains(&k.data_dir(), secret), "{secret} in a file of the data dir");
    }
}
