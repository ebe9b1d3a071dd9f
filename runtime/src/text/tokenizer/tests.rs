//! Tests of the parent module.

use super::*;

fn tiny() -> ClipTokenizer {
    // A 516-token vocabulary: the byte table, its `</w>` forms, two merges, the specials.
    let table = bytes_to_unicode();
    let mut tokens: Vec<String> = table.iter().map(|c| c.to_string()).collect();
    tokens.extend(table.iter().map(|c| format!("{c}</w>")));
    tokens.extend(["ca".to_string(), "cat</w>".to_string()]);
    tokens.extend(["<|startoftext|>".to_string(), "<|endoftext|>".to_string()]);
    let vocab: serde_json::Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), Value::from(i)))
        .collect();
    let merges = "#version: 0.2\nc a\nca t</w>\n";
    ClipTokenizer::from_strings(
        &Value::Object(vocab).to_string(),
        merges,
        SpecialTokens::default(),
        (Path::new("vocab.json"), Path::new("merges.txt")),
    )
    .unwrap()
}

#[test]
fn byte_table_matches_gpt2() {
    let t = bytes_to_unicode();
    assert_eq!(t[b'!' as usize], '!');
    assert_eq!(t[0], 'Ā'); // 256
    assert_eq!(t[b' ' as usize], 'Ġ');
    assert_eq!(t[0xAD], 'Ń'); // 256 + 67
    let mut sorted: Vec<char> = t.to_vec();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 256);
}

#[test]
fn merges_and_pads() {
    let tok = tiny();
    assert_eq!(tok.vocab_size(), 516);
    assert_eq!((tok.bos_id(), tok.eos_id(), tok.pad_id()), (514, 515, 515));
    // "cat" → "ca" + "t</w>" → "cat</w>" (id 513); "CAT " lower-cased, space dropped.
    assert_eq!(tok.encode("CAT  cat"), vec![514, 513, 513, 515]);
    let e = tok.encode_padded("cat");
    assert_eq!(e.ids.len(), 77);
    assert_eq!(&e.ids[..4], &[514, 513, 515, 515]);
    assert_eq!(e.truncated_tokens, 0);
    let long = "a ".repeat(80);
    let e = tok.encode_padded(&long);
    assert_eq!(e.truncated_tokens, 5);
    assert_eq!(e.ids[76], 515);
}

#[test]
fn bad_merges_line_is_an_error() {
    let err = ClipTokenizer::from_strings(
        "{\"<|startoftext|>\": 0, \"<|endoftext|>\": 1}",
        "#version: 0.2\nabc\n",
        SpecialTokens::default(),
        (Path::new("v.json"), Path::new("m.txt")),
    )
    .unwrap_err();
    assert!(err.to_string().contains("m.txt"), "{err}");
    assert!(err.to_string().contains("line 2"), "{err}");
}
