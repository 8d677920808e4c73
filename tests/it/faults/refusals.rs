//! ARCHITECTURE.md's table of Telegram's refusals, the fake's refusals
//! (`kuryer_sim::fake_bot_api::REFUSALS`, the texts it answers in
//! Client.cpp's words) and kuryer's own reading of them
//! (`kuryer_actors::outcome::REFUSALS`) agree, so none can drift.

use kuryer_actors::outcome::{Side, refusal_of};

/// (code, text, about) of each row of the table.
fn table() -> Vec<(u16, String, String)> {
    let root = crate::docs::scan::root();
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let start = doc
        .find("### Telegram's refusals, by chat")
        .expect("the table's heading");
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with("| code |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].parse().expect("a code"),
                cells[2].trim_matches('`').to_owned(),
                cells[4].to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_refusals_table_matches_the_fake_and_kuryer() {
    let rows = table();
    assert!(rows.len() >= 15, "{rows:?}");
    for (code, text, source) in kuryer_sim::fake_bot_api::REFUSALS {
        assert!(
            rows.iter().any(|(c, t, _)| c == code && t == text),
            "the fake answers {code} {text:?} ({source}): a row of ARCHITECTURE.md's table must say what kuryer does"
        );
    }
    for (_, text, about) in &rows {
        let sample = text.replace('…', "anything new");
        let side = refusal_of(&sample).map(|(side, _)| side);
        let want = match about.as_str() {
            "destination" => Some(Side::Destination),
            "either" => Some(Side::Either),
            "message" => None,
            other => panic!("{text}: unknown side {other:?}"),
        };
        assert_eq!(side, want, "{text}: the table says {about}");
    }
    for (tail, _, _) in kuryer_actors::outcome::REFUSALS {
        // The old wording teloxide still expects has no row of its own.
        if *tail == "bot was kicked from a chat" {
            continue;
        }
        assert!(
            rows.iter().any(|(_, t, _)| t.ends_with(tail)),
            "kuryer reads {tail:?}: the table must list it"
        );
    }
}
