"""JANUS on a row sample of each of the 15 shared datasets, through SDV's public API."""

import pytest
from sdmetrics.single_column import CategoryCoverage

from benchmark.datasets import load_dataset
from sdv_janus import JanusSynthesizer

DATASETS = [
    "abalone",
    "adult",
    "alarm",
    "asia",
    "bank_marketing",
    "cardio",
    "child",
    "credit_default",
    "diabetes",
    "house_sales",
    "insurance",
    "intrusion",
    "loans",
    "student_placements",
    "wine_quality",
]


@pytest.mark.parametrize("name", DATASETS)
def test_fit_and_sample_keep_dtypes_and_every_category(name, data_dir):
    dataset = load_dataset(name, data_dir, rows=1500)
    synthesizer = JanusSynthesizer(dataset.metadata)
    synthesizer.fit({name: dataset.data})
    synthetic = synthesizer.sample(len(dataset.data))[name]

    assert len(synthetic) == len(dataset.data)
    assert synthetic.dtypes.to_dict() == dataset.data.dtypes.to_dict()
    for column, sdtype in dataset.sdtypes.items():
        if sdtype in ("categorical", "boolean", "ordinal"):
            coverage = CategoryCoverage.compute(dataset.data[column], synthetic[column])
            assert coverage == 1.0, column
