import copy, time
import schemathesis
from schemathesis import GenerationMode
from hypothesis import given, settings, Phase, HealthCheck
from tests.fuzz.test_schemathesis import fuzz_document

def test_probe(fuzz_env):
    for tuned in (False, True):
        doc = fuzz_document(fuzz_env.doc) if tuned else fuzz_env.doc
        schema = schemathesis.openapi.from_dict(doc)
        schema.app = fuzz_env.app
        schema.config.generation.update(with_security_parameters=False)
        ops = {f"{r.ok().method.upper()} {r.ok().path}": r.ok() for r in schema.get_all_operations()}
        for label in ("POST /api/admin/keys", "GET /v1/models/{model_id}", "PATCH /api/admin/keys/{key_id}"):
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                n = [0]
                @settings(max_examples=40, deadline=None, database=None, phases=[Phase.generate], derandomize=True, suppress_health_check=list(HealthCheck))
                @given(case=ops[label].as_strategy(generation_mode=mode))
                def one(case):
                    n[0] += 1
                t = time.time(); one()
                print(tuned, label, mode.value, n[0], round(time.time() - t, 2))
