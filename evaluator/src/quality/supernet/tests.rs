//! Tests of the parent module.

use super::*;

#[test]
fn the_sandwich_rule_is_left_out_of_the_settings_and_so_of_the_hash() {
    let sandwich = serde_json::to_value(SupernetSettings::default()).unwrap();
    assert!(sandwich.get("rule").is_none(), "{sandwich}");
    let uniform = SupernetSettings {
        rule: SupernetRule::Uniform,
        distill_weight: 0.0,
        ..SupernetSettings::default()
    };
    let v = serde_json::to_value(&uniform).unwrap();
    assert_eq!(v["rule"], "uniform");
    let back: SupernetSettings = serde_json::from_value(v).unwrap();
    assert_eq!(back, uniform);
    assert!(uniform.check().is_ok());
}

#[test]
fn the_uniform_rule_refuses_distillation_and_zero_drawn_sub_networks() {
    let distilled = SupernetSettings {
        rule: SupernetRule::Uniform,
        ..SupernetSettings::default()
    };
    let err = distilled.check().unwrap_err().to_string();
    assert!(err.contains("supernet.distill_weight"), "{err}");
    let none = SupernetSettings {
        rule: SupernetRule::Uniform,
        distill_weight: 0.0,
        random_subnets: 0,
        ..SupernetSettings::default()
    };
    let err = none.check().unwrap_err().to_string();
    assert!(err.contains("supernet.random_subnets"), "{err}");
}
