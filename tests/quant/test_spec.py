import json

import pytest

from mixprec.quant import QuantSpec, TokenSplit, parse_spec


def test_defaults_follow_the_mode():
    static = QuantSpec()
    assert (static.weight_bits, static.act_bits, static.act_mode) == (8, 8, "static")
    assert static.weight_granularity == "per_channel" and static.weight_symmetric
    assert static.act_granularity == "per_tensor" and static.observer == "minmax"
    assert QuantSpec(act_mode="dynamic").act_granularity == "per_token"
    assert QuantSpec(weight_granularity="per_group").group_size == 128


@pytest.mark.parametrize("kwargs, field", [
    ({"weight_bits": 5}, "weight_bits"),
    ({"act_bits": 3}, "act_bits"),
    ({"act_mode": "lazy"}, "act_mode"),
    ({"observer": "max"}, "observer"),
    ({"weight_granularity": "per_row"}, "weight_granularity"),
    ({"act_mode": "static", "act_granularity": "per_token"}, "per_token"),
    ({"act_mode": "none", "act_bits": 8}, "act_mode"),
    ({"group_size": 64}, "group_size"),
    ({"percentile": 20.0}, "percentile"),
])
def test_bad_fields_are_named(kwargs, field):
    with pytest.raises(ValueError, match=field):
        QuantSpec(**kwargs)


def test_token_split_validation():
    with pytest.raises(ValueError, match="fraction"):
        TokenSplit(fraction=1.5)
    with pytest.raises(ValueError, match="high_bits"):
        QuantSpec(act_bits=8, act_mode="dynamic", token_split=TokenSplit(0.25, 6))
    own_scale = QuantSpec(act_bits=8, act_mode="static", token_split=TokenSplit(0.25, 8))
    assert own_scale.label.endswith("-t25@8")
    with pytest.raises(ValueError, match="token_split.selection='top'"):
        TokenSplit(0.25, 8, "top")
    fixed = QuantSpec(act_mode="dynamic", token_split=TokenSplit(0.1, 16, "positions"))
    assert fixed.label.endswith("-t10pos@16") and fixed.needs_calibration
    assert QuantSpec.from_dict(fixed.to_dict()) == fixed
    older = fixed.to_dict()
    del older["token_split"]["selection"]  # plans written before fixed positions existed
    assert QuantSpec.from_dict(older).token_split.selection == "per_image"
    assert not QuantSpec.from_dict(older).needs_calibration
    with pytest.raises(ValueError, match="token_split"):
        QuantSpec(act_bits=16, act_mode="none", token_split=TokenSplit(0.25, 8))


def test_per_group_activations_take_the_weights_groups_and_dynamic_scales():
    spec = QuantSpec(4, 8, "dynamic", weight_granularity="per_group", group_size=32,
                     act_granularity="per_group")
    assert spec.label == "W4g32A8-dynamic-group"
    assert QuantSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="act_granularity='per_group' needs act_mode='dynamic'"):
        QuantSpec(4, 8, "static", weight_granularity="per_group", act_granularity="per_group")
    with pytest.raises(ValueError, match="weight_granularity='per_group'"):
        QuantSpec(8, 8, "dynamic", act_granularity="per_group")


def test_json_round_trip_and_hashable():
    spec = QuantSpec(4, 4, "dynamic", weight_granularity="per_group", group_size=32,
                     token_split=TokenSplit(0.25, 8), observer="mse")
    again = QuantSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and hash(again) == hash(spec)
    assert spec.label == "W4g32A4-dynamic-t25@8"
    with pytest.raises(ValueError, match="unknown QuantSpec field"):
        QuantSpec.from_dict({**spec.to_dict(), "bits": 3})


def test_float_spec_properties():
    flt = QuantSpec(weight_bits=16, act_bits=16, act_mode="none")
    assert flt.is_float and not flt.quantizes_weights and not flt.quantizes_acts
    assert flt.label == "float-float32"
    assert QuantSpec(weight_bits=4, act_bits=16, act_mode="none").label == "W4A16"


def test_parse_spec_names():
    assert parse_spec("w4a8-dynamic").label == "W4A8-dynamic"
    assert parse_spec("W8A8").act_mode == "static"
    assert parse_spec("w4a16").label == "W4A16"
    assert parse_spec("w3a16-nupes").label == "W3A16-nupes"
    with pytest.raises(ValueError, match="weight_format='nupes' needs"):
        parse_spec("w4a8-nupes")
    assert parse_spec("fp32").is_float
    with pytest.raises(ValueError, match="bad spec name 'int8'"):
        parse_spec("int8")
    with pytest.raises(ValueError, match="weight_bits=5"):
        parse_spec("w5a8")
