//! Demo rows for the generic task log: Suno and video tasks with realistic platforms,
//! actions, statuses and JSON columns, written as new-api writes them (JSON as BLOBs on
//! SQLite, `json` values elsewhere; epoch seconds).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sea_orm::TransactionTrait;

use crate::error::Error;
use crate::service::Service;
use crate::service::task_log::store::{self, NewPlatformTask};

/// (platform, action, model) as new-api records them.
const KINDS: [(&str, &str, &str); 7] = [
    ("suno", "MUSIC", "suno_music"),
    ("suno", "LYRICS", "suno_lyrics"),
    ("50", "generate", "kling-v1"),
    ("50", "textGenerate", "kling-v1-6"),
    ("54", "textGenerate", "doubao-seedance-1-0-pro"),
    ("55", "textGenerate", "sora-2"),
    ("52", "firstTailGenerate", "viduq1"),
];
const INPUTS: [&str; 5] = [
    "a lo-fi song about rain on a tin roof",
    "a corgi surfing a wave at sunset",
    "city lights timelapse, cinematic",
    "an upbeat jingle for a bakery",
    "a paper boat drifting down a gutter",
];

impl Service {
    /// Inserts `tasks` generated rows into the task log over `owners`, spread over the last
    /// 30 days (epoch seconds), newest last, in one transaction.
    pub async fn insert_demo_platform_tasks(
        &self,
        tasks: usize,
        owners: &[i64],
    ) -> Result<(), Error> {
        let mut rng = StdRng::seed_from_u64(0x7461);
        let now = chrono::Utc::now().timestamp();
        let step = 86_400 * 30 / (tasks.max(1) as i64);
        let start = now - step * tasks as i64;
        let txn = self.db.begin().await?;
        for i in 0..tasks {
            let submit = start + step * i as i64;
            store::insert(&txn, demo_row(&mut rng, owners, submit, i)).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

fn demo_row(rng: &mut StdRng, owners: &[i64], submit: i64, i: usize) -> NewPlatformTask {
    let (platform, action, model) = KINDS[rng.random_range(0..KINDS.len())];
    let input = INPUTS[rng.random_range(0..INPUTS.len())];
    let roll: u32 = rng.random_range(0..100);
    let status = match roll {
        0..=64 => "SUCCESS",
        65..=74 => "FAILURE",
        75..=84 => "IN_PROGRESS",
        85..=92 => "QUEUED",
        _ => "SUBMITTED",
    };
    let done = status == "SUCCESS" || status == "FAILURE";
    let started = done || status == "IN_PROGRESS";
    let start = if started {
        submit + rng.random_range(2..30)
    } else {
        0
    };
    let finish = if done {
        start + rng.random_range(20..300)
    } else {
        0
    };
    let progress = match status {
        "IN_PROGRESS" => format!("{}%", rng.random_range(5..95)),
        _ if done => "100%".to_owned(),
        _ => "0%".to_owned(),
    };
    let task_id = format!("task_{:08x}{:04}", submit, i % 10_000);
    let ext = if platform == "suno" { "mp3" } else { "mp4" };
    let url = format!("https://cdn.example.com/{platform}/{task_id}.{ext}");
    // The upstream key is a placeholder, as a real row's would be a secret never served.
    let private_data = if status == "SUCCESS" {
        format!(r#"{{"key":"demo-upstream-key","upstream_task_id":"up-{i}","result_url":"{url}"}}"#)
    } else {
        r#"{"key":"demo-upstream-key"}"#.to_owned()
    };
    NewPlatformTask {
        id: None,
        created_at: submit,
        updated_at: if done { finish } else { submit },
        task_id,
        platform: platform.to_owned(),
        user_id: owners[rng.random_range(0..owners.len())],
        group: "default".to_owned(),
        channel_id: rng.random_range(1..=5i64),
        quota: if done {
            rng.random_range(1..=8i64) * 1000
        } else {
            0
        },
        action: action.to_owned(),
        status: status.to_owned(),
        fail_reason: if status == "FAILURE" {
            "upstream rejected the request".to_owned()
        } else {
            String::new()
        },
        submit_time: submit,
        start_time: start,
        finish_time: finish,
        progress,
        properties: format!(
            r#"{{"input":"{input}","origin_model_name":"{model}","upstream_model_name":"{model}"}}"#
        ),
        private_data,
        data: Some(format!(
            r#"{{"code":0,"message":"{status}","task_id":"up-{i}"}}"#
        )),
    }
}
