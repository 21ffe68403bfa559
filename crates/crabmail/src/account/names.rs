//! Readable random local parts, for inboxes created without a name and for name collisions.

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "clever", "crisp", "dapper", "eager", "fancy", "gentle", "glad",
    "golden", "happy", "jolly", "keen", "kind", "lively", "lucky", "merry", "mellow", "nimble",
    "noble", "polite", "proud", "quick", "quiet", "rapid", "shiny", "silent", "silver", "smart",
    "steady", "sunny", "swift", "tidy", "witty", "zesty",
];

const NOUNS: &[&str] = &[
    "badger", "beacon", "canyon", "comet", "crab", "delta", "falcon", "fern", "harbor", "heron",
    "island", "lagoon", "lantern", "maple", "meadow", "otter", "pebble", "pine", "planet",
    "puffin", "quartz", "raven", "reef", "river", "rocket", "sparrow", "summit", "tide", "tulip",
    "valley", "walrus", "willow",
];

const SUFFIX_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

fn pick<'a>(words: &[&'a str]) -> &'a str {
    words[rand::random_range(0..words.len())]
}

/// `swift-otter-4821`: two words and four digits; about 11 million combinations.
pub fn random_local_part() -> String {
    format!(
        "{}-{}-{:04}",
        pick(ADJECTIVES),
        pick(NOUNS),
        rand::random_range(0..10_000u32)
    )
}

/// Four characters without look-alikes (no l, o, 0, 1) for `name-xxxx` when `name` is taken.
pub fn random_suffix() -> String {
    (0..4)
        .map(|_| SUFFIX_ALPHABET[rand::random_range(0..SUFFIX_ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_names_are_valid_local_parts() {
        for _ in 0..200 {
            let name = random_local_part();
            assert_eq!(
                super::super::address::validate_local_part(&name).unwrap(),
                name
            );
            let suffix = random_suffix();
            assert_eq!(suffix.len(), 4);
            assert!(suffix.bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        }
    }
}
