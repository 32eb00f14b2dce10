//! Carriers (operators) of Chinese numbers: one canonical code per operator,
//! the codes smartivr's number API filters by (`lt`, `dx`, `yd`), and the
//! names vendors write for each, so a filter accepts any of them.

/// `(code, names)`: every name compared after [`fold`].
const CARRIERS: &[(&str, &[&str])] = &[
    (
        "lt",
        &[
            "联通",
            "聯通",
            "中国联通",
            "中國聯通",
            "china unicom",
            "unicom",
        ],
    ),
    (
        "dx",
        &[
            "电信",
            "電信",
            "中国电信",
            "中國電信",
            "china telecom",
            "telecom",
        ],
    ),
    (
        "yd",
        &[
            "移动",
            "移動",
            "中国移动",
            "中國移動",
            "china mobile",
            "mobile",
            "cmcc",
        ],
    ),
];

/// Lower case, without spaces and without the pinyin glosses in parentheses
/// some vendor texts carry (`聯(lián)通`).
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '(' | '（' => depth += 1,
            ')' | '）' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            c if c.is_whitespace() => {}
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// The canonical code of a carrier written as a code, a Chinese name
/// (simplified or traditional) or an English name; `None` when unknown.
pub fn carrier_code(text: &str) -> Option<&'static str> {
    let folded = fold(text);
    if folded.is_empty() {
        return None;
    }
    // Compared without copying: every call of a listing page names its carrier.
    let unspaced = |name: &str| name.chars().filter(|c| *c != ' ').eq(folded.chars());
    CARRIERS.iter().find_map(|(code, names)| {
        (folded == *code || names.iter().any(|n| unspaced(n))).then_some(*code)
    })
}

/// Every stored text a `carriers` filter value stands for: the value itself
/// and, for a known carrier, its code and every name of it (with the glossed
/// spellings the vendor samples use).
pub fn carrier_spellings(value: &str) -> Vec<String> {
    let mut out = vec![value.to_owned()];
    if let Some(code) = carrier_code(value)
        && let Some((_, names)) = CARRIERS.iter().find(|(c, _)| *c == code)
    {
        out.push(code.to_owned());
        for name in *names {
            out.push((*name).to_owned());
            // English names as vendors capitalise them.
            if name.is_ascii() {
                out.push(
                    name.split(' ')
                        .map(|w| {
                            let mut c = w.chars();
                            c.next().map_or(String::new(), |f| {
                                f.to_uppercase().collect::<String>() + c.as_str()
                            })
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                );
                out.push(name.to_uppercase());
            }
        }
        let glossed: &[&str] = match code {
            "lt" => &["聯(lián)通"],
            "dx" => &["電(diàn)信"],
            _ => &["移(yí)動(dòng)"],
        };
        out.extend(glossed.iter().map(|s| (*s).to_owned()));
    }
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_has_one_code() {
        for (text, code) in [
            ("lt", Some("lt")),
            ("LT", Some("lt")),
            ("联通", Some("lt")),
            ("聯通", Some("lt")),
            ("聯(lián)通", Some("lt")),
            ("China Unicom", Some("lt")),
            ("中国电信", Some("dx")),
            ("Telecom", Some("dx")),
            ("移动", Some("yd")),
            ("China Mobile", Some("yd")),
            ("", None),
            ("Vodafone", None),
        ] {
            assert_eq!(carrier_code(text), code, "{text}");
        }
    }

    #[test]
    fn a_filter_value_stands_for_every_spelling() {
        let lt = carrier_spellings("lt");
        for s in ["lt", "联通", "聯通", "聯(lián)通", "China Unicom", "Unicom"] {
            assert!(lt.iter().any(|x| x == s), "{s} in {lt:?}");
        }
        assert!(!lt.iter().any(|x| x == "电信"));
        assert_eq!(carrier_spellings("Vodafone"), vec!["Vodafone".to_owned()]);
        for s in carrier_spellings("移动") {
            assert_eq!(carrier_code(&s), Some("yd"), "{s}");
        }
    }
}
