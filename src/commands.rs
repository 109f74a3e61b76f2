//! The command-line commands other than `serve`: users, import, demo, migrate.

use anyhow::Context;
use tokio::io::BufReader;

use crate::app::{self, App};
use crate::config::{
    BenchArgs, DbConfig, DemoArgs, ImportArgs, ServeArgs, UserCreateArgs, UserTokenArgs,
};
use crate::service::Role;

/// `mj-tasks user create`.
pub async fn user_create(args: &UserCreateArgs) -> anyhow::Result<()> {
    let role = Role::from_name(&args.role).context("role is one of user, admin, root")?;
    let service = app::open_service(&args.db).await?;
    let user = service
        .create_user(&args.username, role)
        .await
        .map_err(|e| anyhow::anyhow!("could not create the user: {e}"))?;
    app::print_new_user("Created user.", &user);
    Ok(())
}

/// `mj-tasks user token`: a new access token for an existing user.
pub async fn user_token(args: &UserTokenArgs) -> anyhow::Result<()> {
    let service = app::open_service(&args.db).await?;
    let user = service
        .reissue_token(&args.username)
        .await
        .map_err(|e| anyhow::anyhow!("could not issue a token: {e}"))?;
    app::print_new_user("New token issued (the old one no longer works).", &user);
    Ok(())
}

/// `mj-tasks import [--log midjourney|tasks] FILE|-`.
pub async fn import(args: &ImportArgs) -> anyhow::Result<()> {
    let service = app::open_service(&args.db).await?;
    let input: Box<dyn tokio::io::AsyncRead + Unpin + Send> = if args.file.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("opening {}", args.file.display()))?;
        Box::new(file)
    };
    let input = BufReader::new(input);
    let stored = if args.log == "tasks" {
        service.import_platform_tasks(input).await?
    } else {
        service.import_tasks(input).await?
    };
    let noun = if stored == 1 { "task" } else { "tasks" };
    println!("Imported {stored} {noun}.");
    Ok(())
}

/// `mj-tasks migrate`.
pub async fn migrate(db: &DbConfig) -> anyhow::Result<()> {
    let applied = app::migrate_only(db).await?;
    if applied.is_empty() {
        println!("Nothing to do: the database is up to date.");
    } else {
        println!("Applied: {}.", applied.join(", "));
    }
    Ok(())
}

/// `mj-tasks demo`: a fresh temporary SQLite database with seeded tasks, served until
/// stopped; prints tokens and ready-to-paste curl lines.
pub async fn demo(args: &DemoArgs) -> anyhow::Result<()> {
    let (listen, tasks) = (args.listen, args.tasks);
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
    let db = DbConfig::for_url(url);
    let service = app::open_service(&db).await?;
    let seeded = service
        .seed_demo(tasks as usize)
        .await
        .map_err(|e| anyhow::anyhow!("seeding the demo database: {e}"))?;
    let mut cfg = ServeArgs::new(db, listen);
    cfg.no_migrate = true;
    // The serve settings the demo takes (CORS, rate limits, live progress, …).
    cfg.live = args.live.clone();
    cfg.server = args.server.clone();
    let app = App::build(&cfg).await?;
    // A simulated gateway keeps submitting and advancing tasks, so subscriptions show life.
    let owners = seeded.users.iter().map(|u| u.id).collect();
    let activity = service.clone();
    tokio::spawn(async move { activity.simulate_activity(owners).await });
    let base = format!("http://{}", app.local_addr()?);
    let admin = &seeded.admin;
    println!(
        "Demo database with {tasks} tasks in {}",
        dir.path().display()
    );
    println!();
    for (who, user) in
        std::iter::once(("admin", admin)).chain(seeded.users.iter().map(|u| ("user", u)))
    {
        println!(
            "{who:<5} {:<6} id {:<3} token {}",
            user.username, user.id, user.access_token
        );
    }
    let alice = seeded.users.first().unwrap_or(admin);
    println!();
    println!("# alice's own tasks, 5 per page:");
    println!(
        "curl -s '{base}/api/mj/self?p=1&page_size=5' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}'",
        alice.access_token, alice.id
    );
    println!(
        "# alice's Suno and video tasks (new-api's generic log: times in seconds, 10 per page):"
    );
    println!(
        "curl -s '{base}/api/task/self?platform=suno' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}'",
        alice.access_token, alice.id
    );
    println!("# every task on channel 2 (admin):");
    println!(
        "curl -s '{base}/api/mj/?p=1&page_size=5&channel_id=2' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}'",
        admin.access_token, admin.id
    );
    println!("# the same in English, with a bad parameter:");
    println!(
        "curl -s '{base}/api/mj/self?start_timestamp=NaN' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}' -H 'Accept-Language: en'",
        alice.access_token, alice.id
    );
    println!(
        "# GraphQL: alice's failed tasks with a daily count, and the playground at {base}/graphql"
    );
    println!(
        "curl -s {base}/graphql -H 'Content-Type: application/json' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}' \\\n  -d '{{\"query\":\"{{ midjourneyTasks(filter: {{status: {{eq: \\\"FAILURE\\\"}}}}, page: {{offset: {{pageSize: 3}}}}) {{ totalCount nodes {{ id mjId failReason submittedAt }} }} midjourneyTaskStats {{ byDay(days: 3) {{ start count }} }} }}\"}}'",
        alice.access_token, alice.id
    );
    println!(
        "# live progress (a simulated gateway submits a task for alice, bob or carol every 2 s), as Server-Sent Events:"
    );
    println!(
        "curl -N {base}/graphql -H 'Accept: text/event-stream' -H 'Content-Type: application/json' -H 'Authorization: Bearer {}' -H 'New-Api-User: {}' \\\n  -d '{{\"query\":\"subscription {{ midjourneyTaskEvents {{ kind task {{ id mjId status progress }} }} }}\"}}'",
        alice.access_token, alice.id
    );
    println!("# the playground, alice's headers filled in: open it and press the run button");
    println!(
        "{}",
        crate::graphql::playground::link(&base, alice.id, &alice.access_token)
    );
    println!();
    let result = app.run_until_stopped().await;
    drop(dir);
    Ok(result?)
}

/// `mj-tasks bench`.
pub async fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    };
    if args.http {
        return crate::bench::http::run(args, &url).await;
    }
    if args.export {
        return crate::bench::http::export::run(args, &url).await;
    }
    crate::bench::run(
        &DbConfig::for_url(url),
        args.tasks as usize,
        args.runs as usize,
    )
    .await
}
