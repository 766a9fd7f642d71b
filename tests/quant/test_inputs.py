"""Model inputs as a tensor, a tuple or a dict: batching, checks and calls."""

from __future__ import annotations

import pytest
import torch

from mixprec.quant import inputs


def test_tensor_tuple_and_dict_slice_and_split_alike():
    x = torch.randn(5, 3)
    for value in (x, (x, x * 2), {"a": x, "b": torch.arange(5)}):
        assert inputs.sample_count(value) == 5
        chunks = list(inputs.split(value, 2))
        assert [inputs.sample_count(c) for c in chunks] == [2, 2, 1]
        joined = inputs.concat(chunks)
        assert all(torch.equal(a, b) for a, b in zip(inputs.tensors(joined),
                                                     inputs.tensors(value)))
    assert inputs.input_names({"a": x, "b": x}) == ["a", "b"]
    assert inputs.input_names((x, x)) == ["input", "input_1"]
    assert inputs.sample_shape({"a": torch.zeros(4, 7, 2)}) == (7, 2)


def test_calls_follow_the_form():
    def model(*args, **kwargs):
        return len(args), sorted(kwargs)

    x = torch.zeros(2, 1)
    assert inputs.call_model(model, x) == (1, [])
    assert inputs.call_model(model, (x, x)) == (2, [])
    assert inputs.call_model(model, {"ids": x}) == (0, ["ids"])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"calibration data\['a'\] contains NaN.*sample 1"):
        inputs.check_inputs({"a": torch.tensor([[0.0], [float("nan")]])})
    with pytest.raises(ValueError, match="different batch sizes"):
        inputs.check_inputs({"a": torch.zeros(2, 1), "b": torch.zeros(3, 1)})
    with pytest.raises(TypeError, match="floating point"):
        inputs.check_inputs(torch.zeros(2, 3, dtype=torch.long))
    inputs.check_inputs({"input_ids": torch.zeros(2, 3, dtype=torch.long)})  # token ids
    with pytest.raises(TypeError, match="must be tensors, got int"):
        inputs.check_inputs((1, 2))
    with pytest.raises(TypeError, match="tensor, a tuple or a dict"):
        inputs.check_inputs("images")


def test_primary_output_of_hugging_face_style_outputs():
    logits, hidden = torch.zeros(2, 3), torch.ones(2, 4, 5)
    assert inputs.primary_output({"last_hidden_state": hidden, "logits": logits}) is logits
    assert inputs.primary_output((hidden, logits)) is hidden
    assert inputs.primary_output(logits) is logits
