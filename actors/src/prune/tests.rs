use super::*;
use crate::duration;
use time::macros::datetime;

fn d(c: char) -> Digest {
    Digest::from_hex(&c.to_string().repeat(64)).unwrap()
}

fn cand(c: char, url: &str, list: bool, children: &[char], day: u8) -> Candidate {
    let t = PrimitiveDateTime::new(
        time::Date::from_calendar_date(2025, time::Month::March, day).unwrap(),
        time::Time::MIDNIGHT,
    );
    Candidate {
        digest: d(c),
        is_list: list,
        url: url.to_string(),
        tags: Vec::new(),
        created: t,
        pulled: t,
        children: children.iter().map(|&c| d(c)).collect(),
    }
}

#[test]
fn rules_turn_into_cutoffs_relative_to_now() {
    let now = datetime!(2025-03-31 12:00:00);
    let sel = PruneRule::Accessed(duration::parse("1d").unwrap()).selector(now);
    assert_eq!(sel.pulled_before, Some(datetime!(2025-03-30 12:00:00)));
    assert!(sel.created_before.is_none() && sel.patterns.is_none());
    let sel = PruneRule::Created(duration::parse("10m").unwrap()).selector(now);
    assert_eq!(sel.created_before, Some(datetime!(2025-03-31 11:50:00)));
    assert_eq!(
        PruneRule::Created(duration::parse("30d").unwrap()).to_string(),
        "created more than 30d ago"
    );
}

#[test]
fn patterns_split_on_commas_and_bad_regexes_are_named() {
    assert_eq!(parse_patterns("calico, cilium").unwrap().len(), 2);
    let err = parse_patterns("ok,(unclosed").unwrap_err();
    assert!(err.contains("(unclosed"), "{err}");
    assert!(parse_patterns(" , ").is_err());
}

#[test]
fn an_empty_selector_matches_nothing() {
    let all = vec![cand('a', "r/x:1", false, &['1'], 1)];
    assert!(plan(&all, &Selector::default(), None).is_empty());
}

#[test]
fn dates_and_patterns_must_all_hold() {
    let all = vec![
        cand('a', "docker.io/library/old:1", false, &[], 1),
        cand('b', "docker.io/library/new:1", false, &[], 20),
        cand('c', "quay.io/x/old:1", false, &[], 2),
    ];
    let sel = Selector {
        patterns: Some(parse_patterns("docker.io").unwrap()),
        created_before: Some(datetime!(2025-03-10 00:00:00)),
        pulled_before: None,
    };
    let doomed = plan(&all, &sel, None);
    assert_eq!(doomed.len(), 1);
    assert_eq!(doomed[0].digest, d('a'));
    assert!(
        doomed[0].reason.contains("docker.io"),
        "{}",
        doomed[0].reason
    );
    assert!(doomed[0].reason.contains("2025-03-01T00:00:00"));
}

#[test]
fn a_list_takes_its_cached_images_unless_a_kept_list_names_them() {
    let all = vec![
        cand('e', "r/app:1", true, &['a', 'b', '9'], 1),
        cand('a', "r/app@sha256:aa", false, &['1', '2'], 1),
        cand('b', "r/app@sha256:bb", false, &['1', '3'], 1),
        cand('f', "r/other:1", true, &['b'], 5),
    ];
    let sel = Selector {
        patterns: Some(parse_patterns("app:1").unwrap()),
        ..Selector::default()
    };
    let doomed: Vec<Digest> = plan(&all, &sel, None)
        .into_iter()
        .map(|x| x.digest)
        .collect();
    // `9` is not cached; `b` is also listed by the kept `r/other:1`.
    assert_eq!(doomed, vec![d('e'), d('a')]);
}

#[test]
fn count_limits_the_matches_oldest_pull_first() {
    let all = vec![
        cand('a', "r/a:1", false, &[], 3),
        cand('b', "r/b:1", false, &[], 1),
        cand('c', "r/c:1", false, &[], 2),
    ];
    let sel = Selector {
        pulled_before: Some(datetime!(2025-04-01 00:00:00)),
        ..Selector::default()
    };
    let doomed: Vec<Digest> = plan(&all, &sel, Some(2))
        .into_iter()
        .map(|x| x.digest)
        .collect();
    assert_eq!(doomed, vec![d('b'), d('c')]);
}

#[test]
fn sizes_parse_with_binary_and_decimal_units() {
    assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
    assert_eq!(parse_size("50GiB").unwrap(), 50 << 30);
    assert_eq!(parse_size("500MiB").unwrap(), 500 << 20);
    assert_eq!(parse_size("500 mib").unwrap(), 500 << 20);
    assert_eq!(parse_size("2GB").unwrap(), 2_000_000_000);
    assert_eq!(parse_size("4kB").unwrap(), 4_000);
    assert_eq!(parse_size("3KiB").unwrap(), 3 << 10);
    assert_eq!(parse_size("1TiB").unwrap(), 1 << 40);
    assert_eq!(parse_size(" 7B ").unwrap(), 7);
    for bad in [
        "",
        "GiB",
        "1.5GiB",
        "-1",
        "10 gigs",
        "5Gi",
        "1e9",
        "99999999999TiB",
        "18446744073709551616",
    ] {
        assert!(parse_size(bad).is_err(), "{bad:?} should be refused");
    }
    assert_eq!(human_size(512), "512B");
    assert_eq!(human_size(3 << 29), "1.5GiB");
}

fn sized(blobs: &[(char, u64)]) -> Usage {
    Usage {
        total: blobs.iter().map(|(_, s)| s).sum(),
        sizes: blobs.iter().map(|&(c, s)| (d(c), s)).collect(),
        busy: HashSet::new(),
    }
}

fn bound(max_bytes: u64, pins: &[&str]) -> CacheBound {
    CacheBound {
        max_bytes,
        pins: pins.iter().map(|p| Regex::new(p).unwrap()).collect(),
        grace: Duration::from_secs(60),
    }
}

fn digests(plan: &SizePlan) -> Vec<Digest> {
    plan.doomed.iter().map(|x| x.digest.clone()).collect()
}

const NOW: PrimitiveDateTime = datetime!(2025-03-31 12:00:00);

#[test]
fn eviction_takes_least_recently_pulled_images_until_under_the_bound() {
    // Three lone images of 100 bytes each, pulled on the 1st, 2nd and 3rd.
    let all = vec![
        cand('a', "r/a:1", false, &['1'], 3),
        cand('b', "r/b:1", false, &['2'], 1),
        cand('c', "r/c:1", false, &['3'], 2),
    ];
    let usage = sized(&[('1', 100), ('2', 100), ('3', 100)]);
    let plan = plan_size(&all, &usage, &bound(250, &[]), NOW);
    assert_eq!(digests(&plan), vec![d('b')]);
    assert_eq!((plan.images, plan.freed, plan.remaining), (1, 100, 200));
    assert!(plan.doomed[0].reason.contains("least recently pulled"));
    let plan = plan_size(&all, &usage, &bound(150, &[]), NOW);
    assert_eq!(digests(&plan), vec![d('b'), d('c')]);
    // Under the bound: nothing.
    assert_eq!(
        plan_size(&all, &usage, &bound(300, &[]), NOW),
        SizePlan {
            remaining: 300,
            ..SizePlan::default()
        }
    );
}

#[test]
fn eviction_skips_pinned_and_in_flight_images() {
    let mut recent = cand('c', "r/c:1", false, &['3'], 1);
    recent.pulled = NOW - time::Duration::seconds(10);
    let all = vec![
        cand('a', "r/pinned:1", false, &['1'], 1),
        cand('b', "r/pulling:1", false, &['2'], 1),
        recent,
        cand('e', "r/e:1", false, &['5'], 9),
    ];
    let mut usage = sized(&[('1', 100), ('3', 100), ('5', 100)]);
    usage.busy.insert(d('2'));
    usage.total += 100;
    let plan = plan_size(&all, &usage, &bound(100, &["pinned"]), NOW);
    // Only `e` may go; the rest stays over the bound.
    assert_eq!(digests(&plan), vec![d('e')]);
    assert_eq!(plan.remaining, 300);
}

#[test]
fn eviction_takes_a_list_with_its_images_and_keeps_shared_blobs() {
    let mut all = vec![
        cand('e', "r/app:1", true, &['a', 'b'], 1),
        cand('a', "r/app@sha256:aa", false, &['1', '2'], 1),
        cand('b', "r/app@sha256:bb", false, &['1', '3'], 1),
        cand('c', "r/other:1", false, &['1', '4'], 5),
    ];
    // Pulling one image of the list by digest makes the whole list recent.
    all[2].pulled = datetime!(2025-03-02 00:00:00);
    let usage = sized(&[('1', 100), ('2', 10), ('3', 10), ('4', 10)]);
    let plan = plan_size(&all, &usage, &bound(120, &[]), NOW);
    assert_eq!(digests(&plan), vec![d('e'), d('a'), d('b')]);
    // `1` is shared with `r/other:1`, which stays.
    assert_eq!((plan.images, plan.freed), (1, 20));
    assert!(plan.doomed[1].reason.contains("which is evicted"));
    // A pin on an image of the list keeps the whole list.
    let plan = plan_size(&all, &usage, &bound(120, &["sha256:bb"]), NOW);
    assert_eq!(digests(&plan), vec![d('c')]);
}

#[test]
fn shared_blobs_survive_until_their_last_manifest_goes() {
    let mut refs = RefCounts::new();
    refs.add(&[d('1'), d('2')]);
    refs.add(&[d('1'), d('3')]);
    assert_eq!(refs.get(&d('1')), 2);
    assert_eq!(refs.release(&[d('1'), d('2')]), vec![d('2')]);
    assert_eq!(refs.get(&d('1')), 1);
    assert_eq!(refs.release(&[d('1'), d('3')]), vec![d('1'), d('3')]);
    assert_eq!(refs.get(&d('1')), 0);
    // Releasing what nobody counted reports it as unreferenced and never underflows.
    assert_eq!(refs.release(&[d('4')]), vec![d('4')]);
    assert_eq!(refs.get(&d('4')), 0);
}

#[test]
fn strays_are_the_blobs_no_image_manifest_names_a_list_naming_nothing() {
    let all = [
        cand('1', "r.test/a:v1", true, &['2'], 1),
        cand('2', "r.test/a@x", false, &['a', 'b'], 1),
        cand('3', "r.test/b:v1", false, &['b', 'c'], 1),
    ];
    // `2` is a manifest digest, not a blob file: were it on disk, no image would name it.
    let on_disk = [d('a'), d('b'), d('c'), d('e'), d('f'), d('2'), d('e')];
    assert_eq!(stray_blobs(&all, &on_disk), vec![d('2'), d('e'), d('f')]);
    assert_eq!(stray_blobs(&[], &[d('a')]), vec![d('a')]);
    assert!(stray_blobs(&all, &[d('a'), d('c')]).is_empty());
}
