//! Whatever history the checker's parsers accept, the invariants check and
//! its report never panic: bad input is an error in the result.

use checker::formats;
use proptest::prelude::*;

fn no_panic(text: &str) {
    if let Ok((h, _)) = formats::parse_auto(text) {
        let r = shopcheck::check_checkout(&h);
        let _ = shopcheck::invariants_html(&h, &r, "fuzz");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        no_panic(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn checkout_like_lines_never_panic(lines in prop::collection::vec(
        prop_oneof![
            Just(r#"{"process":"setup","type":"ok","f":"init","value":{"items":{"i":{"stock":1,"price":2}},"users":{"u":3},"orders":{"o":{"user":"u","items":[["i",1]]}}}}"#.to_string()),
            Just(r#"{"process":1,"type":"invoke","f":"checkout","value":{"order":"o"}}"#.to_string()),
            Just(r#"{"process":1,"type":"ok","f":"checkout","value":{"order":"o"}}"#.to_string()),
            Just(r#"{"process":2,"type":"invoke","f":"add_stock","value":{"item":"i","amount":9223372036854775807}}"#.to_string()),
            Just(r#"{"process":2,"type":"info","f":"add_stock","value":{"item":"i","amount":-1}}"#.to_string()),
            Just(r#"{"process":3,"type":"ok","f":"find_user","value":{"user":"u","credit":-1}}"#.to_string()),
            Just(r#"{"process":"nemesis","type":"info","f":"start","value":{"id":1,"fault":"pause"}}"#.to_string()),
            Just(r#"{"process":"final","type":"ok","f":"final","value":{"items":{"i":{"stock":0,"price":2}},"users":{"u":1},"orders":{"o":{"paid":true,"user":"u","items":[["i",1]],"total":2}},"in_flight":1}}"#.to_string()),
            r#"\{"process":[0-3],"type":"(invoke|ok|fail|info)","f":"[a-z_]{0,12}","value":[{}a-z0-9":,\[\]-]{0,30}\}"#,
        ], 0..12)) {
        no_panic(&lines.join("\n"));
    }
}
