//! Accepts for Berth's bridges in a host firewall written for nftables itself:
//! every base chain at the `forward` hook whose policy is drop, in another
//! program's table, gets Berth's accepts inserted at its top, each rule marked
//! with a comment naming Berth's table so that exactly those rules, and nothing
//! else of that chain, are deleted again. (iptables' own FORWARD chain, also an
//! nftables chain under iptables-nft, is left to [`crate::iptables`]: rules that
//! iptables cannot read would break the program that owns it.)

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Error, Result};

/// The one part of `nft -j list ruleset` this needs: chains and the handles and
/// comments of rules. Everything else in a listing is ignored.
#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(default)]
    nftables: Vec<Item>,
}

#[derive(Debug, Default, Deserialize)]
struct Item {
    #[serde(default)]
    chain: Option<ChainItem>,
    #[serde(default)]
    rule: Option<RuleItem>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
struct ChainItem {
    family: String,
    table: String,
    name: String,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    policy: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
struct RuleItem {
    family: String,
    table: String,
    chain: String,
    handle: u64,
    #[serde(default)]
    comment: Option<String>,
}

fn marker(own_table: &str) -> String {
    format!("berth:{own_table}")
}

/// Chains that drop forwarded traffic by default and are not Berth's or
/// iptables'.
fn drop_chains<'a>(l: &'a Listing, own_table: &str) -> Vec<&'a ChainItem> {
    l.nftables
        .iter()
        .filter_map(|i| i.chain.as_ref())
        .filter(|c| {
            (c.family == "ip" || c.family == "inet")
                && c.hook.as_deref() == Some("forward")
                && c.kind.as_deref() == Some("filter")
                && c.policy.as_deref() == Some("drop")
                && !(c.family == "ip" && c.table == own_table)
                && !(c.family == "ip" && c.table == "filter" && c.name == "FORWARD")
        })
        .collect()
}

fn ours<'a>(l: &'a Listing, own_table: &str) -> Vec<&'a RuleItem> {
    let m = marker(own_table);
    l.nftables
        .iter()
        .filter_map(|i| i.rule.as_ref())
        .filter(|r| r.comment.as_deref() == Some(m.as_str()))
        .collect()
}

fn m(op: &str, left: Value, right: Value) -> Value {
    json!({ "match": { "op": op, "left": left, "right": right } })
}

/// The transaction that deletes Berth's earlier rules and inserts the accepts
/// `bridges` need at the top of every chain that drops by default.
fn commands(l: &Listing, own_table: &str, bridges: &[String]) -> Vec<Value> {
    let mut cmds: Vec<Value> = ours(l, own_table)
        .into_iter()
        .map(|r| {
            json!({ "delete": { "rule": {
                "family": r.family, "table": r.table, "chain": r.chain, "handle": r.handle,
            } } })
        })
        .collect();
    let comment = marker(own_table);
    for c in drop_chains(l, own_table) {
        for b in bridges {
            let meta = |k: &str| json!({ "meta": { "key": k } });
            for expr in [
                vec![
                    m("==", meta("iifname"), json!(b)),
                    json!({ "accept": null }),
                ],
                vec![
                    m("==", meta("oifname"), json!(b)),
                    m(
                        "in",
                        json!({ "ct": { "key": "state" } }),
                        json!({ "set": ["established", "related"] }),
                    ),
                    json!({ "accept": null }),
                ],
                vec![
                    m("==", meta("oifname"), json!(b)),
                    m("in", json!({ "ct": { "key": "status" } }), json!("dnat")),
                    json!({ "accept": null }),
                ],
            ] {
                cmds.push(json!({ "insert": { "rule": {
                    "family": c.family, "table": c.table, "chain": c.name,
                    "comment": comment, "expr": expr,
                } } }));
            }
        }
    }
    cmds
}

fn listing() -> Result<Listing> {
    let raw = nftables::helper::get_current_ruleset_raw(
        None::<&str>,
        ["list", "ruleset"].iter().copied(),
    )
    .map_err(|e| Error::Nft(e.to_string()))?;
    serde_json::from_str(&raw).map_err(|e| Error::Nft(format!("reading the ruleset: {e}")))
}

fn run(cmds: Vec<Value>) -> Result<()> {
    if cmds.is_empty() {
        return Ok(());
    }
    let payload = json!({ "nftables": cmds }).to_string();
    nftables::helper::apply_ruleset_raw(&payload, None::<&str>, std::iter::empty::<&str>())
        .map(drop)
        .map_err(|e| Error::Nft(e.to_string()))
}

/// Makes the host's drop-by-default forward chains accept what `bridges` need
/// (and nothing more of Berth's than that). Blocking.
pub fn apply(own_table: &str, bridges: &[String]) -> Result<()> {
    run(commands(&listing()?, own_table, bridges))
}

/// Deletes every rule Berth's table put into other chains. Blocking.
pub fn remove(own_table: &str) -> Result<()> {
    run(commands(&listing()?, own_table, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"{"nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "inet", "name": "hostfw", "handle": 1}},
        {"chain": {"family": "inet", "table": "hostfw", "name": "fwd", "handle": 1,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "hostfw", "name": "in", "handle": 2,
                   "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 3,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "ip", "table": "berth", "name": "forward", "handle": 4,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}},
        {"chain": {"family": "inet", "table": "open", "name": "fwd", "handle": 5,
                   "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
        {"rule": {"family": "inet", "table": "hostfw", "chain": "fwd", "handle": 7,
                  "comment": "berth:berth", "expr": [{"accept": null}]}},
        {"rule": {"family": "inet", "table": "hostfw", "chain": "fwd", "handle": 8,
                  "comment": "berth:berth-other", "expr": [{"xt": {"type": "match"}}]}},
        {"rule": {"family": "inet", "table": "hostfw", "chain": "fwd", "handle": 9,
                  "expr": [{"drop": null}]}}
    ]}"#;

    #[test]
    fn only_foreign_drop_chains_get_accepts_and_only_ours_are_deleted() {
        let l: Listing = serde_json::from_str(LISTING).expect("listing");
        let chains: Vec<String> = drop_chains(&l, "berth")
            .iter()
            .map(|c| format!("{} {} {}", c.family, c.table, c.name))
            .collect();
        assert_eq!(chains, ["inet hostfw fwd"]);
        let cmds = commands(&l, "berth", &["b0".into()]);
        let text = serde_json::to_string(&cmds).expect("json");
        // Our earlier rule goes; another daemon's and the host's own stay.
        assert_eq!(text.matches(r#""delete""#).count(), 1);
        assert!(text.contains(r#""handle":7"#));
        assert!(!text.contains(r#""handle":8"#) && !text.contains(r#""handle":9"#));
        assert_eq!(text.matches(r#""insert""#).count(), 3);
        assert_eq!(text.matches(r#""comment":"berth:berth""#).count(), 3);
        assert!(text.contains(r#""right":"b0""#));
        // With no bridges left, removal is all there is.
        let cmds = commands(&l, "berth", &[]);
        assert_eq!(cmds.len(), 1);
        assert!(cmds[0]["delete"]["rule"]["handle"] == 7);
    }
}
