//! Container names: validation, generated `adjective_surname` names, as dockerd,
//! and `docker rename`.

use std::sync::Arc;

use berth_api::{ApiError, Result};
use berth_engine::{Job, Reply};

use crate::{event, Containers};

const LEFT: &[&str] = &[
    "admiring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "confident",
    "cool",
    "dazzling",
    "determined",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "fervent",
    "festive",
    "focused",
    "friendly",
    "frosty",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "happy",
    "hopeful",
    "hungry",
    "inspiring",
    "intelligent",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "naughty",
    "nervous",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "relaxed",
    "reverent",
    "romantic",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const RIGHT: &[&str] = &[
    "albattani",
    "allen",
    "almeida",
    "archimedes",
    "ardinghelli",
    "aryabhata",
    "austin",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bassi",
    "bell",
    "benz",
    "bhabha",
    "bose",
    "brahmagupta",
    "brattain",
    "brown",
    "carson",
    "cerf",
    "chandrasekhar",
    "clarke",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "dirac",
    "easley",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gates",
    "goldberg",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hopper",
    "hypatia",
    "jackson",
    "jennings",
    "johnson",
    "kalam",
    "keller",
    "kepler",
    "knuth",
    "lamarr",
    "lamport",
    "leakey",
    "lovelace",
    "lumiere",
    "mayer",
    "mccarthy",
    "mcclintock",
    "meitner",
    "mendel",
    "morse",
    "napier",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "perlman",
    "pike",
    "poincare",
    "ptolemy",
    "raman",
    "ritchie",
    "rosalind",
    "sammet",
    "shannon",
    "shockley",
    "sinoussi",
    "stallman",
    "swartz",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "wilson",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

fn rand_index(n: usize) -> usize {
    let mut b = [0u8; 8];
    let _ = getrandom::getrandom(&mut b);
    (u64::from_le_bytes(b) % n as u64) as usize
}

/// A name like `sleepy_turing`; `retry > 0` adds a digit, as dockerd does on clashes.
pub fn generate(retry: usize) -> String {
    let mut n = format!(
        "{}_{}",
        LEFT[rand_index(LEFT.len())],
        RIGHT[rand_index(RIGHT.len())]
    );
    if retry > 0 {
        n.push_str(&rand_index(10).to_string());
    }
    n
}

/// `[a-zA-Z0-9][a-zA-Z0-9_.-]+`, an optional leading `/`.
pub fn valid(name: &str) -> bool {
    let n = name.strip_prefix('/').unwrap_or(name);
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c))
}

/// `POST /containers/{id}/rename?name=`.
pub(crate) async fn rename(job: Job, c: Arc<Containers>) -> Result<Reply> {
    // The path names the container as `id`: `name` is the query's new name.
    let entry = c.find(job.args.required("id")?)?;
    let new = job.args.str("name").unwrap_or("").to_string();
    if new.is_empty() {
        return Err(ApiError::invalid("Neither old nor new names may be empty"));
    }
    if !valid(&new) {
        return Err(ApiError::invalid(format!(
            "Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let full = if new.starts_with('/') {
        new.clone()
    } else {
        format!("/{new}")
    };
    let old = entry.snapshot().name;
    if old == full {
        return Err(ApiError::invalid(
            "Renaming a container with the same name as its current name",
        ));
    }
    {
        let mut names = c.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(other) = names.get(&full) {
            return Err(ApiError::conflict(format!(
                "Conflict. The container name \"{full}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
            )));
        }
        let id = entry.snapshot().id;
        names.remove(&old);
        names.insert(full.clone(), id);
    }
    let rec = {
        let mut r = entry.record.lock().unwrap_or_else(|p| p.into_inner());
        r.name = full.clone();
        r.clone()
    };
    c.save(&rec)?;
    event(&job, &rec, "rename", &[("oldName", old)]);
    Ok(Reply::empty(204))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid("web"));
        assert!(valid("/web-1.a_b"));
        assert!(!valid("-web"));
        assert!(!valid("a"));
        assert!(!valid("bad name"));
        assert!(!valid("x/y"));
        let g = generate(0);
        assert!(valid(&g) && g.contains('_'));
    }
}
