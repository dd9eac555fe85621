//! A removable database rule that refuses some messages: the poison of the DLQ scenarios. It is a
//! real store condition (a SQLite trigger, a MongoDB collection validator, as a DBA's rule would
//! be) with a real removable cause, so no test hook lives in production code.

use kamshub::config::{Settings, StoreKind};
use secrecy::ExposeSecret;
use std::time::Duration;

/// Turns on (or removes) the rule that refuses every message whose text contains "poison".
pub async fn rule(settings: &Settings, on: bool) {
    match settings.store.kind {
        StoreKind::Embedded => {
            let db = rusqlite::Connection::open(settings.data_dir.join("kamshub.sqlite3")).unwrap();
            db.busy_timeout(Duration::from_secs(30)).unwrap();
            let sql = if on {
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON messages WHEN NEW.text LIKE '%poison%' \
                 BEGIN SELECT RAISE(ABORT, 'message refused by the refuse_poison rule'); END;"
            } else {
                "DROP TRIGGER refuse_poison;"
            };
            db.execute_batch(sql).unwrap();
        }
        StoreKind::Mongodb => {
            let uri = settings.store.uri.as_ref().unwrap().expose_secret().to_owned();
            let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
            let validator = if on {
                mongodb::bson::doc! {"text": {"$not": {"$regex": "poison"}}}
            } else {
                mongodb::bson::doc! {}
            };
            let command =
                mongodb::bson::doc! {"collMod": "messages", "validator": validator, "validationAction": "error"};
            client.database(&settings.store.database).run_command(command).await.unwrap();
        }
    }
}
