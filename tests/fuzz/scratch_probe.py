from tests.fuzz.known_bugs import KNOWN_BUGS
def test_probe(fuzz_env):
    for bug in KNOWN_BUGS:
        r = bug.repro(fuzz_env)
        print(bug.name, r.status_code, len(r.get_data()), r.get_data()[:100])
