//! Writing rows of the task log as new-api writes them: JSON columns as BLOBs on SQLite and
//! `json` values elsewhere (cast from text on PostgreSQL), `group` quoted. Used by the demo
//! data and by `import`.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// A row to store (`id` `None`: the database picks it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPlatformTask {
    pub id: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub task_id: String,
    pub platform: String,
    pub user_id: i64,
    pub group: String,
    pub channel_id: i64,
    pub quota: i64,
    pub action: String,
    pub status: String,
    pub fail_reason: String,
    pub submit_time: i64,
    pub start_time: i64,
    pub finish_time: i64,
    pub progress: String,
    /// JSON text.
    pub properties: String,
    /// JSON text (upstream keys: stored, never served).
    pub private_data: String,
    /// JSON text; `None` stores NULL.
    pub data: Option<String>,
}

const COLUMNS: [&str; 19] = [
    "id",
    "created_at",
    "updated_at",
    "task_id",
    "platform",
    "user_id",
    "group",
    "channel_id",
    "quota",
    "action",
    "status",
    "fail_reason",
    "submit_time",
    "start_time",
    "finish_time",
    "progress",
    "properties",
    "private_data",
    "data",
];

/// Inserts `row` on `db`.
pub async fn insert<C: ConnectionTrait>(db: &C, row: NewPlatformTask) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let quote = |c: &str| match backend {
        DbBackend::MySql => format!("`{c}`"),
        _ => format!("\"{c}\""),
    };
    let with_id = row.id.is_some();
    let columns: Vec<&str> = COLUMNS
        .iter()
        .copied()
        .filter(|c| with_id || *c != "id")
        .collect();
    let params: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let p = match backend {
                DbBackend::Postgres => format!("${}", i + 1),
                _ => "?".to_owned(),
            };
            let json = matches!(*c, "properties" | "private_data" | "data");
            if json && backend == DbBackend::Postgres {
                format!("CAST({p} AS json)")
            } else {
                p
            }
        })
        .collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote("tasks"),
        columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        params.join(", ")
    );
    let json = |text: Option<String>| -> Value {
        match (text, backend) {
            (None, _) => Value::String(None),
            (Some(t), DbBackend::Sqlite) => Value::from(t.into_bytes()),
            (Some(t), _) => Value::from(t),
        }
    };
    let mut values = Vec::with_capacity(19);
    if let Some(id) = row.id {
        values.push(Value::from(id));
    }
    values.extend([
        Value::from(row.created_at),
        Value::from(row.updated_at),
        Value::from(row.task_id),
        Value::from(row.platform),
        Value::from(row.user_id),
        Value::from(row.group),
        Value::from(row.channel_id),
        Value::from(row.quota),
        Value::from(row.action),
        Value::from(row.status),
        Value::from(row.fail_reason),
        Value::from(row.submit_time),
        Value::from(row.start_time),
        Value::from(row.finish_time),
        Value::from(row.progress),
        json(Some(row.properties)),
        json(Some(row.private_data)),
        json(row.data),
    ]);
    db.execute_raw(Statement::from_sql_and_values(backend, &sql, values))
        .await
        .map(|_| ())
}
