// adapprox._core: the native core for Python. Arrays arrive through DLPack; the caller (the
// torch and NumPy fronts) owns every state buffer; the GIL is released while native code runs.
// One generic step serves every optimizer (bind_registry.cpp).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "adapprox/as_rsi.hpp"
#include "adapprox/isa.hpp"
#include "adapprox/phase_times.hpp"
#include "adapprox/thread_pool.hpp"
#include "adapprox/tuning.hpp"
#include "adapprox/version.h"
#include "binders.hpp"
#include "numpy_buffers.hpp"
#include "dlpack_import.hpp"

namespace py = pybind11;
using namespace adapprox;
using bindings::to_numpy;

namespace {

py::tuple as_rsi_py(py::handle a, int rank, int min_rank, int max_rank, double tol, int oversample,
                    int power_iters, uint64_t seed) {
  py_dlpack::Imported in = py_dlpack::import_tensor(a, "A", /*writable=*/false);
  if (in.ref.shape.size() != 2)
    throw py::value_error("A: expected a 2-D matrix, got shape " + shape_str(in.ref.shape));
  RsiOptions opt;
  opt.rank = rank;
  opt.min_rank = min_rank;
  opt.max_rank = max_rank;
  opt.tol = tol;
  opt.oversample = oversample;
  opt.power_iters = power_iters;
  opt.seed = seed;
  const int64_t m = in.ref.shape[0], n = in.ref.shape[1];
  auto finish = [&](auto&& r) {
    using T = typename std::decay_t<decltype(r.q)>::value_type;
    return py::make_tuple(to_numpy<T>(r.q, {m, r.rank}), to_numpy<T>(r.u, {n, r.rank}), r.rel_err);
  };
  if (in.ref.dtype == DType::f64) {
    RsiResult<double> r;
    {
      py::gil_scoped_release nogil;
      r = as_rsi(static_cast<const double*>(in.ref.data), m, n, opt);
    }
    return finish(r);
  }
  if (in.ref.dtype != DType::f32)
    throw py::type_error(std::string("A: as_rsi supports float32 and float64, got ") + dtype_name(in.ref.dtype));
  RsiResult<float> r;
  {
    py::gil_scoped_release nogil;
    r = as_rsi(static_cast<const float*>(in.ref.data), m, n, opt);
  }
  return finish(r);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "adapprox native core (C++17 + Eigen), reached through DLPack";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::type)
        PyErr_SetString(PyExc_TypeError, e.what());
      else if (e.kind() == ErrorKind::comm)
        PyErr_SetString(PyExc_RuntimeError, e.what());
      else
        PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.attr("__version__") = ADAPPROX_VERSION_STRING;  // pyproject.toml's, through CMake (version.h)
  m.def("num_threads", &num_threads, "Threads the native core uses.");
  m.def(
      "set_num_threads",
      [](py::int_ n) {
        const long long v = PyLong_AsLongLong(n.ptr());
        if (v == -1 && PyErr_Occurred()) PyErr_Clear();
        if (v < 1 || v > tuning::kMaxThreads)
          throw Error(ErrorKind::value, "set_num_threads: n must be from 1 to " + std::to_string(tuning::kMaxThreads) +
                                            ", got " + std::string(py::str(n)));
        set_num_threads(static_cast<int>(v));
      },
      py::arg("n"), "Set the number of native threads (1 to 1024).");
  m.def(
      "isa",
      [] {
        py::dict d;
        d["active"] = isa_name(isa_active());
        d["detected"] = isa_name(isa_detected());
        return d;
      },
      "The instruction set hot loops run at ('active': the CPU's best, 'detected', capped by the "
      "ADAPPROX_ISA environment variable). Results are bitwise the same at every level.");
  m.def("set_phase_timing", &set_phase_timing, py::arg("on"), "Time the factored step's phases (off by default).");
  m.def("reset_phase_times", &reset_phase_times, "Zero the phase totals.");
  m.def(
      "phase_times",
      [] {
        const PhaseTimes t = phase_times();
        py::dict d;
        for (int i = 0; i < static_cast<int>(Phase::count); ++i)
          d[phase_name(static_cast<Phase>(i))] = py::make_tuple(t.seconds[i], t.calls[i]);
        return d;
      },
      "Phase name -> (seconds summed over threads, times entered) since the last reset.");
  m.def("as_rsi", &as_rsi_py, py::arg("A"), py::arg("rank"), py::arg("min_rank"), py::arg("max_rank"),
        py::arg("tol"), py::arg("oversample"), py::arg("power_iters"), py::arg("seed"));
  m.def("default_max_rank", &default_max_rank, py::arg("m"), py::arg("n"));

  for (auto bind : bindings::binders()) bind(m);
}
