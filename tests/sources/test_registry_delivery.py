"""Each source declares what a whole, current delivery is; a malformed declaration names the source and key."""

from __future__ import annotations

import pytest
import yaml

from sources.registry import REGISTRY_FILE, Delivery, RegistryError, load_registry


def test_every_source_declares_its_delivery_checks():
    registry = load_registry()
    assert all(source.delivery.max_row_drop is not None for source in registry.values())
    assert registry["benefits"].delivery == Delivery(max_row_drop=0.1, count_file=False, max_age_days=21)


@pytest.mark.parametrize(("delivery", "message"), [
    ({"max_row_drop": 1.5}, r"source 'notifications', key 'delivery.max_row_drop': give a share from 0 up to"),
    ({"max_row_drop": "10%"}, r"key 'delivery.max_row_drop'"),
    ({"count_file": "yes"}, r"source 'notifications', key 'delivery.count_file': give true or false"),
    ({"max_age_days": 0}, r"source 'notifications', key 'delivery.max_age_days': give a whole number of days"),
    ({"max_age_days": 7.5}, r"key 'delivery.max_age_days'"),
    ({"max_rows_drop": 0.1}, r"source 'notifications', key 'delivery': unknown key\(s\) \['max_rows_drop'\]"),
    ("weekly", r"source 'notifications', key 'delivery': expected a mapping"),
])
def test_a_malformed_delivery_names_the_source_and_key(tmp_path, delivery, message):
    raw = yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))
    raw["notifications"]["delivery"] = delivery
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
