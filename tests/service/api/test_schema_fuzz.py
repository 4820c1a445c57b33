"""Property-based fuzzing of the whole API from its own OpenAPI schema (schemathesis).

Schemathesis reads /openapi.json from a real server and, for every operation, sends
generated requests, valid and invalid by the schema; each response must not be a 5xx and
must conform to the schema (documented status code, content type, body schema, headers).
Bounded for CI: a few dozen examples per operation, no deadline per example.

    python -m pytest tests/service/api/test_schema_fuzz.py
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings

from service.app import create_app
from service.settings import Settings
from tests.service.conftest import Server, settings_for

pytestmark = pytest.mark.slow  # servers, subprocesses or training: not in the fast lane

MAX_EXAMPLES = 40  # per operation and mode: about 10 s in all on a small machine


# Valid and invalid requests. Every check but positive_data_acceptance: a schema-valid but
# semantically wrong value (a label the model does not have, a model that is not served) is
# rightly a 4xx; the schema cannot know the served models' classes.
CONFIG = {
    "generation": {"mode": "all"},
    "checks": {"positive_data_acceptance": {"enabled": False}},
}


def fuzz_settings(model_dir: Path) -> Settings:
    return settings_for(model_dir, default_model="fashion")


# The schema is read at collection time from an app built with the server's settings (it
# depends on them alone; the test checks the server serves the same one). schemathesis'
# lazy `from_fixture` loader does not work with pytest 9 (it sets the removed Node._nodeid).
SCHEMA = create_app(fuzz_settings(Path("unused"))).openapi()
schema = schemathesis.openapi.from_dict(SCHEMA, config=schemathesis.Config.from_dict(CONFIG))


@pytest.fixture(scope="module")
def fuzzed(model_dir: Path) -> Iterator[Server]:
    srv = Server(fuzz_settings(model_dir)).start()
    assert srv.client.get("/openapi.json").json() == SCHEMA
    yield srv
    srv.stop()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI failures reproduce
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_never_answers_5xx_and_conforms_to_its_schema(
    case: schemathesis.Case, fuzzed: Server
) -> None:
    case.call_and_validate(base_url=fuzzed.url, timeout=30)
