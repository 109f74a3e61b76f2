//! The benchmark's cases: what each asks over HTTP, and the statements of its floor.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::BenchArgs;
use crate::service::demo::BenchUsers;
use crate::service::{
    Columns, CursorPage, Log, LogFilter, LogQuery, Midjourneys, NumFilter, PageRequest,
    PlatformTaskQuery, Scope, Service, StringFilter, TaskFilter, TaskQuery, Viewer,
};

use super::{Case, Floor, Http, PREPARED, Prepared, auth, gql, offset, viewer};

/// What the floor of a request runs: the page (with its total, or not), or the stats row.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Page,
    PageAndTotal,
    Stats,
}

/// One drawn request of log `L`: who asks, the service query its floor runs, what the floor
/// measures, the credentials and the HTTP request.
type Draw<L = Midjourneys> = (Viewer, LogQuery<L>, Want, (String, String), Http);

/// A case over one kind of request; `make` draws one (a user picked with `rng`).
fn case<L: Log>(
    service: &Service,
    name: &str,
    rng: &mut StdRng,
    mut make: impl FnMut(&mut StdRng) -> anyhow::Result<Draw<L>>,
) -> anyhow::Result<Case> {
    let mut requests = Vec::with_capacity(PREPARED);
    let bad = |e: crate::error::Error| anyhow::anyhow!("{name}: {e}");
    for _ in 0..PREPARED {
        let (viewer, query, want, auth, http) = make(rng)?;
        let floor = if want == Want::Stats {
            Floor::Aggregate(service.totals_statement(&viewer, &query).map_err(bad)?)
        } else {
            let (page, count) = service.page_statements(&viewer, &query).map_err(bad)?;
            // What the service sends for the total: nothing for a lookup (its page is its
            // total), else page and count as one statement.
            let counts = want == Want::PageAndTotal && !query.filter.pins_rows();
            let one = if counts {
                Some(
                    service
                        .page_with_total_statement(&viewer, &query, Columns::All)
                        .map_err(bad)?,
                )
            } else {
                None
            };
            Floor::Page(L::TABLE, page, counts.then_some(count), one)
        };
        requests.push(Prepared { auth, http, floor });
    }
    Ok(Case {
        name: name.to_owned(),
        requests,
    })
}

/// The benchmark's cases.
pub(super) async fn cases(
    service: &Service,
    users: &BenchUsers,
    args: &BenchArgs,
) -> anyhow::Result<Vec<Case>> {
    let mut rng = StdRng::seed_from_u64(0x6274);
    let light = &users.light;
    anyhow::ensure!(!light.is_empty(), "no light users");
    let admin = viewer(&users.admin);
    let heavy = viewer(&users.heavy);
    let own = |scope| TaskQuery {
        scope,
        page: offset(1, 20),
        ..Default::default()
    };
    // Real mj ids of light users' tasks, for lookups.
    let mut lookups = Vec::new();
    for u in light.iter().take(64) {
        let page = service.list_tasks(&viewer(u), &own(Scope::Own)).await?;
        if let Some(r) = page.rows.first() {
            lookups.push((u.clone(), r.mj_id.clone()));
        }
    }
    anyhow::ensure!(!lookups.is_empty(), "no tasks to look up");
    // 24 hours ending now (the seeded tasks span 30 days).
    let now = chrono::Utc::now().timestamp_millis();
    let day = (now - 86_400_000, now);
    // A cursor 10,000 rows into the heavy user's newest-first list (less on a small seed).
    let depth = (args.tasks as u64 / 10).saturating_sub(40).clamp(1, 10_000);
    let deep = service
        .list_tasks(
            &heavy,
            &TaskQuery {
                page: offset(depth, 1),
                ..Default::default()
            },
        )
        .await?
        .cursor(0)
        .unwrap_or_default();
    let deepest = (args.tasks as u64 / 20).max(1);
    let deep_name = format!("GraphQL heavy user cursor page {depth} deep");
    let lookup = |mj: &str, scope| TaskQuery {
        filter: TaskFilter {
            mj_id: Some(StringFilter {
                eq: Some(mj.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..own(scope)
    };
    let pick = |rng: &mut StdRng| &light[rng.random_range(0..light.len())];

    let mut out = Vec::new();
    let only = |name: &str| args.only.as_deref().is_none_or(|o| name.contains(o));
    macro_rules! add {
        ($name:expr, $make:expr) => {
            if only($name) {
                out.push(case(service, $name, &mut rng, $make)?);
            }
        };
    }
    add!("REST user first page + total", |rng| {
        let u = pick(rng);
        Ok((
            viewer(u),
            own(Scope::Own),
            Want::PageAndTotal,
            auth(u),
            Http::Get("/api/mj/self?p=1&page_size=20".into()),
        ))
    });
    add!("REST heavy user (10 %) first page + total", |_| {
        Ok((
            heavy.clone(),
            own(Scope::Own),
            Want::PageAndTotal,
            auth(&users.heavy),
            Http::Get("/api/mj/self?p=1&page_size=20".into()),
        ))
    });
    add!("REST mj_id lookup", |rng| {
        let (u, mj) = &lookups[rng.random_range(0..lookups.len())];
        let query = lookup(mj, Scope::Own);
        Ok((
            viewer(u),
            query,
            Want::PageAndTotal,
            auth(u),
            Http::Get(format!("/api/mj/self?mj_id={mj}")),
        ))
    });
    add!("REST 24-hour window + total", |rng| {
        let u = pick(rng);
        let query = TaskQuery {
            filter: TaskFilter {
                submit_time: Some(NumFilter {
                    gte: Some(day.0),
                    lte: Some(day.1),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..own(Scope::Own)
        };
        let path = format!(
            "/api/mj/self?start_timestamp={}&end_timestamp={}",
            day.0, day.1
        );
        Ok((
            viewer(u),
            query,
            Want::PageAndTotal,
            auth(u),
            Http::Get(path),
        ))
    });
    add!("REST admin first page + whole-table total", |_| {
        Ok((
            admin.clone(),
            own(Scope::Visible),
            Want::PageAndTotal,
            auth(&users.admin),
            Http::Get("/api/mj/?p=1&page_size=20".into()),
        ))
    });
    add!("REST admin channel filter + total", |rng| {
        let channel = rng.random_range(1..=5);
        let query = TaskQuery {
            filter: TaskFilter {
                channel_id: Some(NumFilter {
                    eq: Some(channel),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..own(Scope::Visible)
        };
        Ok((
            admin.clone(),
            query,
            Want::PageAndTotal,
            auth(&users.admin),
            Http::Get(format!("/api/mj/?channel_id={channel}")),
        ))
    });
    add!("REST admin page 500 deep + total", |_| {
        let query = TaskQuery {
            page: offset(500, 20),
            ..own(Scope::Visible)
        };
        Ok((
            admin.clone(),
            query,
            Want::PageAndTotal,
            auth(&users.admin),
            Http::Get("/api/mj/?p=500&page_size=20".into()),
        ))
    });
    add!("REST admin deepest page + total", |_| {
        let query = TaskQuery {
            page: offset(deepest, 20),
            ..own(Scope::Visible)
        };
        Ok((
            admin.clone(),
            query,
            Want::PageAndTotal,
            auth(&users.admin),
            Http::Get(format!("/api/mj/?p={deepest}&page_size=20")),
        ))
    });
    const FIELDS: &str = "id mjId action prompt promptEn status progress imageUrl videoUrl submitTime startTime finishTime failReason quota";
    add!("GraphQL user first page + totalCount", |rng| {
        let u = pick(rng);
        let q = format!(
            "{{ midjourneyTasks(page: {{offset: {{page: 1, pageSize: 20}}}}) {{ totalCount nodes {{ {FIELDS} }} }} }}"
        );
        Ok((
            viewer(u),
            own(Scope::Visible),
            Want::PageAndTotal,
            auth(u),
            Http::Graphql(gql(&q)),
        ))
    });
    add!("GraphQL heavy user first page + totalCount", |_| {
        let q = format!(
            "{{ midjourneyTasks(page: {{offset: {{page: 1, pageSize: 20}}}}) {{ totalCount nodes {{ {FIELDS} }} }} }}"
        );
        Ok((
            heavy.clone(),
            own(Scope::Visible),
            Want::PageAndTotal,
            auth(&users.heavy),
            Http::Graphql(gql(&q)),
        ))
    });
    add!("GraphQL mj_id lookup + totalCount", |rng| {
        let (u, mj) = &lookups[rng.random_range(0..lookups.len())];
        let query = lookup(mj, Scope::Visible);
        let q = format!(
            "{{ midjourneyTasks(filter: {{mjId: {{eq: \"{mj}\"}}}}) {{ totalCount nodes {{ {FIELDS} }} }} }}"
        );
        Ok((
            viewer(u),
            query,
            Want::PageAndTotal,
            auth(u),
            Http::Graphql(gql(&q)),
        ))
    });
    // The heavy user's newest-first list by cursor: from the start, and 10,000 rows in.
    let cursor_page = |after: Option<String>| -> anyhow::Result<Draw> {
        let query = TaskQuery {
            page: PageRequest::Cursor(CursorPage {
                first: Some(20),
                after: after.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let after = after.map_or(String::new(), |c| format!(", after: \"{c}\""));
        let q = format!(
            "{{ midjourneyTasks(page: {{cursor: {{first: 20{after}}}}}) {{ nodes {{ {FIELDS} }} }} }}"
        );
        Ok((
            heavy.clone(),
            query,
            Want::Page,
            auth(&users.heavy),
            Http::Graphql(gql(&q)),
        ))
    };
    add!("GraphQL heavy user cursor first page", |_| cursor_page(
        None
    ));
    add!(&deep_name, |_| cursor_page(Some(deep.clone())));
    // new-api's generic task log (Suno, video): the same requests on its routes and field.
    let own_tasks = |scope| PlatformTaskQuery {
        scope,
        page: offset(1, 20),
        ..Default::default()
    };
    add!("REST task log: user first page + total", |rng| {
        let u = pick(rng);
        Ok((
            viewer(u),
            own_tasks(Scope::Own),
            Want::PageAndTotal,
            auth(u),
            Http::Get("/api/task/self?p=1&page_size=20".into()),
        ))
    });
    add!(
        "REST task log: admin first page + whole-table total",
        |_| {
            Ok((
                admin.clone(),
                own_tasks(Scope::Visible),
                Want::PageAndTotal,
                auth(&users.admin),
                Http::Get("/api/task/?p=1&page_size=20".into()),
            ))
        }
    );
    add!("GraphQL tasks: user first page + totalCount", |rng| {
        let u = pick(rng);
        let q = "{ tasks(page: {offset: {page: 1, pageSize: 20}}) { totalCount nodes { id taskId platform action status progress resultUrl input submitTime finishTime failReason quota } } }";
        Ok((
            viewer(u),
            own_tasks(Scope::Visible),
            Want::PageAndTotal,
            auth(u),
            Http::Graphql(gql(q)),
        ))
    });
    add!("GraphQL midjourneyTaskStats, one user", |rng| {
        let u = pick(rng);
        let q = "{ midjourneyTaskStats { count quotaSum successCount failureCount } }";
        Ok((
            viewer(u),
            own(Scope::Visible),
            Want::Stats,
            auth(u),
            Http::Graphql(gql(q)),
        ))
    });
    Ok(out)
}
