import pytest

from mixprec.quant import Plan, QuantSpec, Unit, UnitList

W8A8 = QuantSpec()
W4A8 = QuantSpec(weight_bits=4, act_mode="dynamic")


def _units(model_id: str = "M-1") -> UnitList:
    units = [Unit("a", "linear", 4, 8, 8, params=64), Unit("att.qk", "attn_qk", 4, 2, 4),
             Unit("b", "linear", 4, 8, 8, params=64)]
    return UnitList(units, model_id, (1, 2, 2), {})


def test_uniform_replace_and_equality():
    plan = Plan.uniform(_units(), W8A8)
    assert plan.names == ["a", "att.qk", "b"] and plan.model_id == "M-1"
    changed = plan.replace({"b": W4A8})
    assert changed["b"] == W4A8 and plan["b"] == W8A8
    assert changed != plan and changed == Plan.uniform(_units(), W8A8).replace({"b": W4A8})
    with pytest.raises(KeyError, match="zzz"):
        plan.replace({"zzz": W8A8})


def test_json_round_trip():
    plan = Plan.uniform(_units(), W8A8).replace({"a": W4A8})
    assert Plan.from_json(plan.to_json()) == plan


def test_bad_spec_in_json_names_unit_and_field():
    text = Plan.uniform(_units(), W8A8).to_json().replace('"weight_bits": 8', '"weight_bits": 5', 1)
    with pytest.raises(ValueError, match=r"unit 'a'.*weight_bits=5"):
        Plan.from_json(text)


def test_duplicate_and_non_spec_entries_rejected():
    with pytest.raises(ValueError, match="twice"):
        Plan((("a", W8A8), ("a", W8A8)))
    with pytest.raises(TypeError, match="unit 'a'"):
        Plan((("a", "W8A8"),))


def test_check_against_other_model_and_unknown_units():
    plan = Plan.uniform(_units(), W8A8)
    with pytest.raises(ValueError, match="plan is for model 'M-1'"):
        plan.check_against(_units("M-2"))
    foreign = Plan((("x", W8A8),))
    with pytest.raises(ValueError, match="does not have.*'x'"):
        foreign.check_against(_units())
    partial = Plan((("a", W8A8),))
    assert partial.check_against(_units()) == ["att.qk", "b"]


def test_token_split_only_on_linear_units():
    from mixprec.quant import TokenSplit
    split = QuantSpec(act_bits=4, act_mode="dynamic", token_split=TokenSplit(0.25, 8))
    with pytest.raises(ValueError, match="att.qk.*token_split"):
        Plan.uniform(_units(), split).check_against(_units())
