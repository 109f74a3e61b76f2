//! Realistic demo data: a few users and thousands of tasks across channels, actions and
//! statuses, generated from a fixed seed so every demo looks the same.

use entity::midjourney;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

use entity::midjourney::Column;
use entity::user;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};

use crate::error::Error;
use crate::service::Service;
use crate::service::users::NewUser;
use crate::service::viewer::Role;

const ACTIONS: &[&str] = &[
    "IMAGINE",
    "IMAGINE",
    "IMAGINE",
    "UPSCALE",
    "UPSCALE",
    "VARIATION",
    "REROLL",
    "DESCRIBE",
    "BLEND",
    "ZOOM",
    "PAN",
    "VIDEO",
    "INPAINT",
    "SHORTEN",
];
const SUBJECTS: &[&str] = &[
    "a lighthouse on a cliff at dawn",
    "a cat astronaut floating above Saturn",
    "watercolor map of an imaginary archipelago",
    "cyberpunk street market in the rain",
    "a bowl of ramen, studio lighting",
    "portrait of an old sailor, oil painting",
    "isometric cozy library with plants",
    "mountain village in autumn fog",
];
const STYLES: &[&str] = &["--ar 16:9", "--v 6", "--style raw", "--q 2", "--niji 6", ""];

/// The users of a benchmark database.
pub struct BenchUsers {
    pub admin: NewUser,
    /// Owns 10 % of the tasks.
    pub heavy: NewUser,
    /// Share the other 90 %.
    pub light: Vec<NewUser>,
}

/// The users a demo database gets.
pub struct DemoUsers {
    pub admin: NewUser,
    pub users: Vec<NewUser>,
}

impl Service {
    /// Creates an admin and three users, then `tasks` tasks owned by the three users (and a
    /// few by the admin), newest last. Epoch times are milliseconds, as new-api stores them.
    pub async fn seed_demo(&self, tasks: usize) -> Result<DemoUsers, Error> {
        let admin = self.create_user("admin", Role::Admin).await?;
        let mut users = Vec::new();
        for name in ["alice", "bob", "carol"] {
            users.push(self.create_user(name, Role::Common).await?);
        }
        let owners: Vec<i64> = users.iter().map(|u| u.id).chain([admin.id]).collect();
        self.insert_demo_tasks(tasks, &owners).await?;
        // The generic log (Suno, video) beside it, a third as many.
        self.insert_demo_platform_tasks(tasks.div_ceil(3), &owners)
            .await?;
        Ok(DemoUsers { admin, users })
    }

    /// Creates a benchmark's users (an admin, one heavy user who owns 10 % of the tasks, and
    /// `light` users sharing the rest), then `tasks` tasks. Names start with `bench-`, so a
    /// later run can find them again ([`Service::bench_users`]).
    pub async fn seed_bench(&self, tasks: usize, light: usize) -> Result<BenchUsers, Error> {
        let admin = self.create_user("bench-admin", Role::Admin).await?;
        let heavy = self.create_user("bench-heavy", Role::Common).await?;
        let mut users = Vec::with_capacity(light);
        for i in 0..light {
            users.push(
                self.create_user(&format!("bench-{i:04}"), Role::Common)
                    .await?,
            );
        }
        // One slot in ten for the heavy user, the other nine spread over the light ones.
        let mut owners = Vec::with_capacity(light.max(1) * 10);
        for u in &users {
            owners.extend([u.id; 9]);
            owners.push(heavy.id);
        }
        if owners.is_empty() {
            owners.push(heavy.id);
        }
        self.insert_demo_tasks(tasks, &owners).await?;
        // The generic log beside it, a third as many (its own benchmark cases).
        self.insert_demo_platform_tasks(tasks.div_ceil(3), &owners)
            .await?;
        Ok(BenchUsers {
            admin,
            heavy,
            light: users,
        })
    }

    /// The users [`Service::seed_bench`] made, with their tokens, when this database has
    /// them (a benchmark run reusing an earlier seed).
    pub async fn bench_users(&self) -> Result<Option<BenchUsers>, Error> {
        let found = user::Entity::find()
            .filter(user::Column::Username.starts_with("bench-"))
            .filter(user::deleted_at().is_null())
            .order_by_asc(user::Column::Id)
            .all(&self.db)
            .await?;
        let mut admin = None;
        let mut heavy = None;
        let mut light = Vec::new();
        for m in found {
            let username = m.username.clone().unwrap_or_default();
            let role = Role::from_stored(m.role.unwrap_or_default()).unwrap_or(Role::Common);
            let token = m.access_token.clone().unwrap_or_default();
            let u = NewUser {
                id: m.id,
                username: username.clone(),
                role,
                access_token: token.trim_end().to_owned(),
            };
            match username.as_str() {
                "bench-admin" => admin = Some(u),
                "bench-heavy" => heavy = Some(u),
                _ => light.push(u),
            }
        }
        Ok(match (admin, heavy) {
            (Some(admin), Some(heavy)) => Some(BenchUsers {
                admin,
                heavy,
                light,
            }),
            _ => None,
        })
    }

    /// Inserts `tasks` generated tasks over `owners` (picked at random), spread over the last
    /// 30 days, newest last, in one transaction.
    async fn insert_demo_tasks(&self, tasks: usize, owners: &[i64]) -> Result<(), Error> {
        let mut rng = StdRng::seed_from_u64(0x6d6a);
        // Spread over the last 30 days, so time windows and daily stats show data.
        let now_ms = chrono::Utc::now().timestamp_millis();
        let step_ms = 86_400_000 * 30 / (tasks.max(1) as i64);
        let start_ms = now_ms - step_ms * tasks as i64;
        let txn = self.db.begin().await?;
        let mut batch = Vec::with_capacity(200);
        for i in 0..tasks {
            batch.push(demo_task(
                &mut rng,
                owners,
                start_ms + step_ms * i as i64,
                i,
            ));
            if batch.len() == 200 || i + 1 == tasks {
                midjourney::Entity::insert_many(std::mem::take(&mut batch))
                    .exec(&txn)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Refreshes the planner's statistics (and PostgreSQL's visibility map) after a bulk
    /// load, as autovacuum would a little later.
    pub async fn refresh_statistics(&self) -> Result<(), Error> {
        let sql = match self.db.get_database_backend() {
            DbBackend::Postgres => "VACUUM ANALYZE midjourneys",
            DbBackend::MySql => "ANALYZE TABLE midjourneys",
            _ => "ANALYZE",
        };
        self.db.execute_unprepared(sql).await?;
        Ok(())
    }
}

/// How often the demo's simulated gateway submits or advances a task.
pub const ACTIVITY_TICK: Duration = Duration::from_secs(2);

impl Service {
    /// Plays a gateway at work on the demo database, writing the table directly as new-api
    /// does: every [`ACTIVITY_TICK`] a new task is submitted for the next of `owners` in
    /// turn, and every
    /// task it submitted moves on (in progress by steps of 25 %, then success, or now and
    /// then failure). Runs until the process ends; a failed write is logged and retried.
    pub async fn simulate_activity(&self, owners: Vec<i64>) {
        let mut rng = StdRng::seed_from_u64(0x6c69);
        let mut running: Vec<(String, u32)> = Vec::new();
        let mut n: u64 = 0;
        loop {
            tokio::time::sleep(ACTIVITY_TICK).await;
            if let Err(e) = self
                .activity_step(&mut rng, &owners, &mut running, &mut n)
                .await
            {
                tracing::warn!(error = %e, "demo activity: a write failed");
            }
        }
    }

    async fn activity_step(
        &self,
        rng: &mut StdRng,
        owners: &[i64],
        running: &mut Vec<(String, u32)>,
        n: &mut u64,
    ) -> Result<(), Error> {
        for (mj_id, step) in running.iter_mut() {
            *step += 1;
            let (status, progress, fail) = match *step {
                1..=3 => ("IN_PROGRESS", format!("{}%", *step * 25), ""),
                _ if rng.random_range(0..5) == 0 => {
                    ("FAILURE", "100%".to_owned(), "Banned prompt detected")
                }
                _ => ("SUCCESS", "100%".to_owned(), ""),
            };
            let now = chrono::Utc::now().timestamp_millis();
            let mut update = midjourney::Entity::update_many()
                .col_expr(Column::Status, Expr::value(status))
                .col_expr(Column::Progress, Expr::value(progress))
                .col_expr(Column::FailReason, Expr::value(fail))
                .filter(Column::MjId.eq(mj_id.as_str()));
            if *step == 1 {
                update = update.col_expr(Column::StartTime, Expr::value(now));
            }
            if status == "SUCCESS" {
                let url = format!("https://cdn.example.com/mj/{mj_id}.png");
                update = update
                    .col_expr(Column::ImageUrl, Expr::value(url))
                    .col_expr(Column::FinishTime, Expr::value(now));
            } else if status == "FAILURE" {
                update = update.col_expr(Column::FinishTime, Expr::value(now));
            }
            update.exec(&self.db).await?;
        }
        running.retain(|(_, step)| *step < 4);
        *n += 1;
        let now = chrono::Utc::now().timestamp_millis();
        let mut task = demo_task(rng, owners, now, *n as usize);
        // The owners in turn, the first (alice, whose commands the demo prints) first: a
        // subscriber sees a task of hers within the first tick.
        if !owners.is_empty() {
            let owner = owners[(*n as usize - 1) % owners.len()];
            task.user_id = Set(Some(owner));
        }
        let mj_id = format!("live{now}{n:04}");
        task.mj_id = Set(Some(mj_id.clone()));
        task.status = Set(Some("SUBMITTED".to_owned()));
        task.progress = Set(Some("0%".to_owned()));
        for empty in [
            &mut task.image_url,
            &mut task.video_url,
            &mut task.video_urls,
            &mut task.fail_reason,
        ] {
            *empty = Set(Some(String::new()));
        }
        task.start_time = Set(Some(0));
        task.finish_time = Set(Some(0));
        midjourney::Entity::insert(task).exec(&self.db).await?;
        running.push((mj_id, 0));
        Ok(())
    }
}

fn demo_task(rng: &mut StdRng, owners: &[i64], submit: i64, i: usize) -> midjourney::ActiveModel {
    let action = ACTIONS[rng.random_range(0..ACTIONS.len())];
    let subject = SUBJECTS[rng.random_range(0..SUBJECTS.len())];
    let style = STYLES[rng.random_range(0..STYLES.len())];
    let roll: u32 = rng.random_range(0..100);
    let (status, progress, code) = match roll {
        0..=69 => ("SUCCESS", "100%".to_owned(), 1),
        // new-api marks a failed task done (100%), like a successful one.
        70..=79 => ("FAILURE", "100%".to_owned(), 1),
        80..=89 => ("IN_PROGRESS", format!("{}%", rng.random_range(1..100)), 1),
        90..=94 => ("SUBMITTED", "0%".to_owned(), 22),
        _ => ("NOT_START", "0%".to_owned(), 1),
    };
    let mj_id = format!("{:013}{:06}", submit, i);
    let started = status != "NOT_START" && status != "SUBMITTED";
    let start = if started {
        submit + rng.random_range(500..20_000)
    } else {
        0
    };
    let finish = if status == "SUCCESS" || status == "FAILURE" {
        start + rng.random_range(10_000..90_000)
    } else {
        0
    };
    let success = status == "SUCCESS";
    let video = success && action == "VIDEO";
    let image_url = if success && !video {
        format!("https://cdn.example.com/mj/{mj_id}.png")
    } else {
        String::new()
    };
    let video_url = if video {
        format!("https://cdn.example.com/mj/{mj_id}.mp4")
    } else {
        String::new()
    };
    let video_urls = if video {
        format!("[{{\"url\":\"{video_url}\"}}]")
    } else {
        String::new()
    };
    let prompt = format!("{subject} {style}").trim().to_owned();
    midjourney::ActiveModel {
        code: Set(Some(code)),
        user_id: Set(Some(owners[rng.random_range(0..owners.len())])),
        action: Set(Some(action.to_owned())),
        mj_id: Set(Some(mj_id)),
        prompt: Set(Some(prompt.clone())),
        prompt_en: Set(Some(prompt)),
        description: Set(Some("Submit success".to_owned())),
        state: Set(Some(String::new())),
        submit_time: Set(Some(submit)),
        start_time: Set(Some(start)),
        finish_time: Set(Some(finish)),
        image_url: Set(Some(image_url)),
        video_url: Set(Some(video_url)),
        video_urls: Set(Some(video_urls)),
        status: Set(Some(status.to_owned())),
        progress: Set(Some(progress)),
        fail_reason: Set(Some(if status == "FAILURE" {
            "Banned prompt detected".to_owned()
        } else {
            String::new()
        })),
        channel_id: Set(Some(rng.random_range(1..=5))),
        quota: Set(Some(if success {
            rng.random_range(1..=5) * 250
        } else {
            0
        })),
        buttons: Set(Some("[]".to_owned())),
        properties: Set(Some("{}".to_owned())),
        ..Default::default()
    }
}
