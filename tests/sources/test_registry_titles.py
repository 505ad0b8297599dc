"""Every register has a title in Danish and in English, and a missing one is named."""

from __future__ import annotations

import pytest
import yaml

from sources.registry import REGISTRY_FILE, RegistryError, load_registry


def test_every_register_has_a_danish_and_an_english_title():
    for source in load_registry().values():
        assert source.title_in("da") == source.title_da != source.title == source.title_in("en"), source.name


@pytest.mark.parametrize(("change", "message"), [
    (lambda spec: spec.pop("title_da"), r"source 'notifications': missing key\(s\) \['title_da'\]"),
    (lambda spec: spec.update(title_da="  "), "source 'notifications', key 'title_da': give the register's title in Danish"),
    (lambda spec: spec.update(title={"da": "x"}), "source 'notifications', key 'title': give the register's title in English"),
])
def test_a_missing_or_malformed_title_names_the_source_and_key(tmp_path, change, message):
    raw = yaml.safe_load(REGISTRY_FILE.read_text(encoding="utf-8"))
    change(raw["notifications"])
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
