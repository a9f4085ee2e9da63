//! The fleet comparison on hand-made status documents.

use super::*;
use crate::status::{ServiceStatus, Status};

fn svc(name: &str, announce: Announce, digest: Option<&str>) -> ServiceStatus {
    ServiceStatus {
        name: name.into(),
        key: format!("TCP 198.51.100.10:80 ({name})"),
        announce,
        healthy_weight: 3,
        quorum: 2,
        digest: digest.map(str::to_string),
        ..ServiceStatus::default()
    }
}

/// A director with one service `web` in this state.
fn web(rid: &str, drained: bool, announce: Announce, digest: Option<&str>) -> Member {
    member(rid, drained, vec![svc("web", announce, digest)])
}

fn member(rid: &str, drained: bool, services: Vec<ServiceStatus>) -> Member {
    Member {
        source: format!("http://{rid}:9180"),
        status: Ok(Status {
            router_id: Some(rid.into()),
            drained,
            services,
            ..Status::default()
        }),
    }
}

#[test]
fn agreeing_directors_have_no_problem() {
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        web("10.8.0.2", false, Announce::Announced, Some("aa")),
    ]);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert!(v.rows[0].agree);
    assert!(render_text(&v).contains("2 directors agree on every service"));
}

#[test]
fn different_digests_name_the_service_and_the_directors() {
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        web("10.8.0.2", false, Announce::Announced, Some("bb")),
        web("10.8.0.3", false, Announce::Announced, Some("aa")),
    ]);
    assert_eq!(
        v.problems,
        [Problem::TablesDiffer {
            service: "web".into(),
            groups: vec![
                ("aa".into(), vec!["10.8.0.1".into(), "10.8.0.3".into()]),
                ("bb".into(), vec!["10.8.0.2".into()]),
            ],
        }]
    );
    assert_eq!(
        v.problems[0].to_string(),
        "web: forwarding tables differ: 10.8.0.1, 10.8.0.3 has aa; 10.8.0.2 has bb"
    );
    assert!(!v.rows[0].agree);
    assert!(render_text(&v).contains("DISAGREE web: forwarding tables differ"));
}

#[test]
fn a_withdrawn_vip_is_a_problem_unless_drained() {
    let d1 = || web("10.8.0.1", false, Announce::Announced, Some("aa"));
    let v = compare(&[
        d1(),
        web("10.8.0.2", false, Announce::Withdrawn, Some("aa")),
    ]);
    assert_eq!(
        v.problems[0].to_string(),
        "web: withdrawn on 10.8.0.2 while 10.8.0.1 announces"
    );
    let v = compare(&[d1(), web("10.8.0.2", true, Announce::Withdrawn, Some("aa"))]);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
    assert_eq!(v.drained, [Some(false), Some(true)]);
    // Configured not to announce, or every director withdrawn: nothing to compare.
    let v = compare(&[
        web("10.8.0.1", false, Announce::Withdrawn, Some("aa")),
        web("10.8.0.2", false, Announce::NotAnnounced, Some("aa")),
    ]);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn unreachable_and_missing_are_problems() {
    let v = compare(&[
        member(
            "10.8.0.1",
            false,
            vec![
                svc("web", Announce::Announced, Some("aa")),
                svc("dns", Announce::Announced, Some("cc")),
            ],
        ),
        web("10.8.0.2", false, Announce::Announced, Some("aa")),
        Member {
            source: "http://10.8.0.3:9180".into(),
            status: Err(std::sync::Arc::new(MemberError::Task(
                "connect: connection refused".into(),
            ))),
        },
    ]);
    let texts: Vec<String> = v.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "http://10.8.0.3:9180: unreachable: the fetch task failed: connect: connection refused",
            "dns: not configured on 10.8.0.2",
        ]
    );
    assert!(v.rows[0].agree, "web agrees among the reachable");
    assert!(!v.rows[1].agree);
    assert!(render_text(&v).contains("http://10.8.0.3:9180 (unreachable)"));
}

#[test]
fn a_service_not_in_one_kernel_differs() {
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        web("10.8.0.2", false, Announce::Withdrawn, None),
    ]);
    assert!(
        matches!(&v.problems[0], Problem::TablesDiffer { groups, .. } if groups[1].0 == "none")
    );
    assert_eq!(v.problems.len(), 2, "and withdrawn: {:?}", v.problems);
}

#[test]
fn a_vip_drained_on_its_own_is_not_a_problem() {
    let mut drained = svc("web", Announce::Withdrawn, Some("aa"));
    drained.drained = true;
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        member("10.8.0.2", false, vec![drained]),
    ]);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn route_states_against_each_other() {
    // Draining counts as announcing: a director withdrawn beside it is a problem.
    let v = compare(&[
        web("10.8.0.1", false, Announce::Draining, Some("aa")),
        web("10.8.0.2", false, Announce::Withdrawn, Some("aa")),
    ]);
    assert_eq!(
        v.problems[0].to_string(),
        "web: withdrawn on 10.8.0.2 while 10.8.0.1 announces"
    );
    // Announced with the down attributes on one director only: a problem.
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        web("10.8.0.2", false, Announce::Down, Some("aa")),
    ]);
    assert_eq!(v.problems.len(), 1, "{:?}", v.problems);
    // `not announced` by configuration beside an announcing director: not a route problem.
    let v = compare(&[
        web("10.8.0.1", false, Announce::Announced, Some("aa")),
        web("10.8.0.2", false, Announce::NotAnnounced, Some("aa")),
    ]);
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}
