"""A model output's structure survives flattening to a graph's tensors and back."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from mixprec.deploy.outputs import OutputStructure


def test_tuple_with_none_and_nested_dict_round_trips():
    output = (torch.ones(2), None, {"a": torch.zeros(3), "n": 4}, [torch.full((1,), 5.0)])
    structure = OutputStructure.of(output)
    flat = OutputStructure.flatten(output)
    assert structure.tensors == 3 and [t.numel() for t in flat] == [2, 3, 1]
    rebuilt = structure.rebuild([t + 1 for t in flat])
    assert rebuilt[1] is None and rebuilt[2]["n"] == 4 and isinstance(rebuilt[3], list)
    assert torch.equal(rebuilt[0], torch.full((2,), 2.0))
    assert torch.equal(rebuilt[2]["a"], torch.ones(3))


def test_a_tensor_stays_a_tensor_and_an_ordered_dict_keeps_its_order():
    assert torch.equal(OutputStructure.of(torch.zeros(2)).rebuild([torch.ones(2)]),
                       torch.ones(2))
    output = OrderedDict(second=torch.zeros(1), first=torch.ones(1))
    rebuilt = OutputStructure.of(output).rebuild(OutputStructure.flatten(output))
    assert list(rebuilt) == ["second", "first"] and isinstance(rebuilt, OrderedDict)


def test_a_wrong_tensor_count_is_an_error_naming_both_counts():
    structure = OutputStructure.of((torch.zeros(1), torch.zeros(1)))
    with pytest.raises(ValueError, match="returned 1 tensors.*holds 2"):
        structure.rebuild([torch.zeros(1)])
