//! Properties of the key format and of credential extraction, over generated inputs. None of
//! these touch a store: a key that fails here is rejected before any I/O.

use std::collections::HashSet;

use latchkey::{Credential, KeyId, KeyProfile, extract_credential};
use proptest::prelude::*;

fn profiles() -> impl Strategy<Value = KeyProfile> {
    let custom = ("[a-z][a-z0-9]{0,15}", 32usize..=120, any::<bool>()).prop_map(|(prefix, random, checksum)| {
        let body = if checksum { random + 8 } else { random };
        KeyProfile::custom(&prefix, body.min(128), checksum).expect("valid by construction")
    });
    prop_oneof![Just(KeyProfile::ctw()), Just(KeyProfile::orch()), Just(KeyProfile::latchkey()), custom]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_generated_key_parses_under_its_profile(profile in profiles()) {
        let key = profile.generate();
        prop_assert_eq!(key.expose_secret().len(), profile.key_len());
        prop_assert!(profile.parse(key.expose_secret()).is_ok());
        prop_assert!(profile.random_bits() >= 128);
    }

    /// CRC32 detects every error burst up to 32 bits, so any one changed character fails.
    #[test]
    fn any_single_character_change_to_a_checksummed_key_is_rejected(
        position in 0usize..43,
        replacement in proptest::char::any(),
    ) {
        let profile = KeyProfile::latchkey();
        let key = profile.generate();
        let original: Vec<char> = key.expose_secret().chars().collect();
        prop_assume!(original[position] != replacement);
        let mut changed = original.clone();
        changed[position] = replacement;
        let changed: String = changed.into_iter().collect();
        prop_assert!(profile.check(&changed).is_err());
    }

    #[test]
    fn the_parser_never_panics(input in any::<String>(), profile in profiles()) {
        let _ = profile.parse(&input);
    }

    #[test]
    fn the_parser_never_panics_on_near_keys(body in "[0-9a-fA-F_\\-. ]{0,50}") {
        for profile in [KeyProfile::ctw(), KeyProfile::orch(), KeyProfile::latchkey()] {
            let candidate = format!("{}_{body}", profile.prefix());
            let _ = profile.parse(&candidate);
        }
    }

    #[test]
    fn header_extraction_never_panics(headers in proptest::collection::vec((any::<String>(), any::<String>()), 0..6)) {
        let _ = extract_credential(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    }

    #[test]
    fn header_extraction_finds_a_key_in_any_style_with_any_padding(
        style in 0usize..3,
        left in "[ \t]{0,3}",
        right in "[ \t]{0,3}",
        name_upper in any::<bool>(),
    ) {
        let key = KeyProfile::ctw().generate();
        let text = key.expose_secret();
        let (name, value) = match style {
            0 => ("x-api-key", format!("{left}{text}{right}")),
            1 => ("authorization", format!("{left}Bearer {text}{right}")),
            _ => ("authorization", format!("{left}{text}{right}")),
        };
        let name = if name_upper { name.to_uppercase() } else { name.to_owned() };
        prop_assert_eq!(extract_credential([(name.as_str(), value.as_str())]), Ok(Credential::ApiKey(text)));
    }
}

#[test]
fn no_two_generated_keys_or_ids_collide() {
    const SAMPLE: usize = 200_000;
    for profile in [KeyProfile::ctw(), KeyProfile::latchkey()] {
        let keys: HashSet<String> = (0..SAMPLE).map(|_| profile.generate().expose_secret().to_owned()).collect();
        assert_eq!(keys.len(), SAMPLE, "{profile:?}");
    }
    let ids: HashSet<KeyId> = (0..SAMPLE).map(|_| KeyId::generate()).collect();
    assert_eq!(ids.len(), SAMPLE);
}
