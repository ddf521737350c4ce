"""The C++ core's unit tests, the C ABI tests and the C/C++ examples, run by ctest."""
import subprocess


def test_ctest_suite_passes(cpp_build):
    out = subprocess.run(["ctest", "--test-dir", str(cpp_build), "--output-on-failure"], capture_output=True,
                         text=True)
    print(out.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "100% tests passed" in out.stdout
