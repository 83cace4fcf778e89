// hwnas._C: the Python face of the native core. Converts arguments, releases the GIL around work
// that touches no Python or mutable Table state, and maps core errors onto Python exceptions.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "depthwise.h"
#include "latency_table.h"
#include "predictor.h"
#include "variation.h"

namespace py = pybind11;
using hwnas::LatencyPredictor;
using hwnas::LatencyTable;
using hwnas::Stats;

namespace {

template <class T>
using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---------------------------------------------------------------------------------------------
// Argument conversion

std::string fspath(const py::object& path) {
  return py::module_::import("os").attr("fspath")(path).cast<std::string>();
}

std::string shape_text(const py::array& a) {
  std::string out = "[";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) out += (i ? ", " : "") + std::to_string(a.shape(i));
  return out + "]";
}

// Throws ValueError unless `a` has shape `expected` (-1: any size, written "N").
void require_shape(const char* name, const py::array& a, const std::vector<py::ssize_t>& expected) {
  bool ok = a.ndim() == static_cast<py::ssize_t>(expected.size());
  std::string want = "[";
  for (std::size_t i = 0; i < expected.size(); ++i) {
    want += (i ? ", " : "") + (expected[i] < 0 ? std::string("N") : std::to_string(expected[i]));
    ok = ok && (expected[i] < 0 || a.shape(i) == expected[i]);
  }
  if (!ok) throw py::value_error(std::string(name) + " must have shape " + want + "], got " + shape_text(a));
}

void require_integer_dtype(const char* name, const py::array& a) {
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') {
    throw py::value_error(std::string(name) + " must be an integer array, got dtype " +
                          py::str(a.dtype()).cast<std::string>());
  }
}

// Any array-like as an ndarray (no copy for arrays); ValueError naming the argument otherwise.
py::array as_array(const char* name, const py::object& obj) {
  py::array a = py::array::ensure(obj);
  if (!a) throw py::value_error(std::string(name) + " must be array-like");
  return a;
}

CArray<double> float64_array(const char* name, const py::object& obj) {
  const auto a = CArray<double>::ensure(as_array(name, obj));
  if (!a) throw py::value_error(std::string(name) + " must be convertible to float64");
  return a;
}

// int32 codes as given when possible; other integer dtypes are copied after a range check.
CArray<int32_t> int32_codes(const py::object& obj) {
  const py::array codes = as_array("codes", obj);
  require_integer_dtype("codes", codes);
  if (codes.dtype().kind() == 'i' && codes.dtype().itemsize() == 4) return CArray<int32_t>::ensure(codes);
  const auto wide = CArray<int64_t>::ensure(codes);
  CArray<int32_t> out(std::vector<py::ssize_t>(wide.shape(), wide.shape() + wide.ndim()));
  const int64_t* src = wide.data();
  int32_t* dst = out.mutable_data();
  for (py::ssize_t i = 0; i < wide.size(); ++i) {
    if (src[i] < std::numeric_limits<int32_t>::min() || src[i] > std::numeric_limits<int32_t>::max()) {
      const py::ssize_t columns = wide.ndim() == 2 ? wide.shape(1) : 1;
      throw py::value_error("codes: value " + std::to_string(src[i]) + " at row " + std::to_string(i / columns) +
                            ", column " + std::to_string(i % columns) + " does not fit in int32");
    }
    dst[i] = static_cast<int32_t>(src[i]);
  }
  return out;
}

hwnas::Conflict conflict_policy(const std::string& name) {
  if (name == "error") return hwnas::Conflict::Error;
  if (name == "keep") return hwnas::Conflict::Keep;
  if (name == "replace") return hwnas::Conflict::Replace;
  throw py::value_error("on_conflict must be 'error', 'keep' or 'replace', got " + hwnas::quote(name));
}

py::dict stats_dict(const Stats& s) {
  py::dict d;
  d["mean"] = s.mean;
  d["median"] = s.median;
  d["std"] = s.std;
  d["p5"] = s.p5;
  d["p95"] = s.p95;
  d["min"] = s.min;
  d["n"] = s.n;
  return d;
}

// ---------------------------------------------------------------------------------------------
// Table methods that need conversion

void set_many(LatencyTable& table, const std::vector<std::string>& keys, const py::object& stats,
              const py::object& n) {
  const auto values = float64_array("stats", stats);
  require_shape("stats", values, {static_cast<py::ssize_t>(keys.size()), 6});
  const py::array n_array = as_array("n", n);
  require_integer_dtype("n", n_array);
  const auto counts = CArray<int64_t>::ensure(n_array);
  require_shape("n", counts, {static_cast<py::ssize_t>(keys.size())});
  std::vector<Stats> rows(keys.size());
  const double* v = values.data();
  const int64_t* count = counts.data();
  for (std::size_t i = 0; i < keys.size(); ++i, v += 6) rows[i] = {v[0], v[1], v[2], v[3], v[4], v[5], count[i]};
  table.set_many(keys, rows);
}

// The entries as (keys, stats [N, 6] float64 in STAT order, n [N] int64), sorted by key: how Python
// writes a table file without a call per entry.
py::tuple entry_arrays(const LatencyTable& table) {
  const auto& entries = table.entries();
  const auto n = static_cast<py::ssize_t>(entries.size());
  py::list keys;
  py::array_t<double> stats(std::vector<py::ssize_t>{n, 6});
  py::array_t<int64_t> counts(n);
  double* v = stats.mutable_data();
  int64_t* c = counts.mutable_data();
  for (const auto& [key, s] : entries) {
    keys.append(key);
    *v++ = s.mean, *v++ = s.median, *v++ = s.std, *v++ = s.p5, *v++ = s.p95, *v++ = s.min;
    *c++ = s.n;
  }
  return py::make_tuple(keys, stats, counts);
}

// ---------------------------------------------------------------------------------------------
// Predictor methods that need conversion

std::unique_ptr<LatencyPredictor> make_predictor(const LatencyTable& table, std::vector<int> resolutions,
                                                 std::vector<std::vector<std::string>> fixed_keys,
                                                 std::vector<std::string> block_keys, int B, int K, int E, int G,
                                                 int D, std::vector<int> block_stage,
                                                 std::vector<int> block_position, std::vector<int> depth_values,
                                                 std::vector<int> strict_resolutions,
                                                 std::vector<std::vector<double>> fixed_io,
                                                 std::vector<double> block_io,
                                                 std::vector<std::vector<double>> fixed_params,
                                                 std::vector<double> block_params) {
  hwnas::PredictorLayout layout{std::move(resolutions), std::move(fixed_keys),    std::move(block_keys),
                                B, K, E, G, D,
                                std::move(block_stage),  std::move(block_position), std::move(depth_values),
                                std::move(strict_resolutions), std::move(fixed_io), std::move(block_io),
                                std::move(fixed_params), std::move(block_params)};
  // compiled without the GIL from a snapshot taken with it held: another Python thread may modify the Table
  const LatencyTable snapshot = table;
  py::gil_scoped_release release;
  return std::make_unique<LatencyPredictor>(snapshot, layout);
}

py::array_t<double> predict(const LatencyPredictor& p, const py::object& codes_in, int threads) {
  const auto codes = int32_codes(codes_in);
  require_shape("codes", codes, {-1, p.num_codes()});
  const int64_t n = codes.shape(0);
  py::array_t<double> out(n);
  const int32_t* src = codes.data();
  double* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    p.predict(src, n, p.num_codes(), dst, threads);
  }
  return out;
}

py::tuple expected(const LatencyPredictor& p, const py::object& pk_in, const py::object& pe_in,
                   const py::object& pd_in, const py::object& pr_in) {
  const auto pk = float64_array("pk", pk_in), pe = float64_array("pe", pe_in);
  const auto pd = float64_array("pd", pd_in), pr = float64_array("pr", pr_in);
  require_shape("pk", pk, {-1, p.B(), p.K()});
  const py::ssize_t n = pk.shape(0);
  require_shape("pe", pe, {n, p.B(), p.E()});
  require_shape("pd", pd, {n, p.G(), p.D()});
  require_shape("pr", pr, {n, p.R()});
  py::array_t<double> out(n), gk(pk.request().shape), ge(pe.request().shape), gd(pd.request().shape),
      gr(pr.request().shape);
  const double *k = pk.data(), *e = pe.data(), *d = pd.data(), *r = pr.data();
  double *o = out.mutable_data(), *ok = gk.mutable_data(), *oe = ge.mutable_data(), *od = gd.mutable_data(),
         *orr = gr.mutable_data();
  {
    py::gil_scoped_release release;
    p.expected(k, e, d, r, n, o, ok, oe, od, orr);
  }
  return py::make_tuple(out, gk, ge, gd, gr);
}

py::tuple dense(const LatencyPredictor& p) {
  py::array_t<double> fixed(p.R(), p.fixed_terms().data());
  py::array_t<double> block(std::vector<py::ssize_t>{p.R(), p.B(), p.K(), p.E()}, p.block_values().data());
  return py::make_tuple(fixed, block);
}

// ---------------------------------------------------------------------------------------------
// Variation (evolutionary search)

CArray<int32_t> int32_array(const char* name, const py::object& obj) {
  const py::array a = as_array(name, obj);
  require_integer_dtype(name, a);
  const auto out = CArray<int32_t>::ensure(a);
  if (!out) throw py::value_error(std::string(name) + " must be convertible to int32");
  return out;
}

// The predictors stay alive with the Variation (keep_alive on the tuple that holds them).
std::unique_ptr<hwnas::Variation> make_variation(const py::tuple& predictors, const py::object& bounds_in,
                                                 const py::object& anchors_in, std::vector<int32_t> sizes,
                                                 std::vector<int32_t> resolution_codes,
                                                 std::vector<int32_t> repair_step, int B, int G,
                                                 std::vector<int> block_stage, std::vector<int> block_position,
                                                 std::vector<int> depth_values, int population, int mutants,
                                                 double mutate_prob, int max_draws, int repair_rounds,
                                                 double repair_min_step) {
  const auto bounds = float64_array("bounds", bounds_in);
  require_shape("bounds", bounds, {static_cast<py::ssize_t>(predictors.size()), -1});
  const auto anchors = int32_array("anchors", anchors_in);
  require_shape("anchors", anchors, {-1, static_cast<py::ssize_t>(sizes.size())});
  const int runs = static_cast<int>(anchors.shape(0));
  if (predictors.size() && bounds.shape(1) != runs) {
    throw py::value_error("bounds must have one column per run (" + std::to_string(runs) + "), got " +
                          shape_text(bounds));
  }
  std::vector<hwnas::Limit> limits;
  for (std::size_t l = 0; l < predictors.size(); ++l) {
    const double* row = bounds.data() + l * runs;
    limits.push_back({predictors[l].cast<const LatencyPredictor*>(), std::vector<double>(row, row + runs)});
  }
  hwnas::VariationConfig config{B, G, std::move(sizes), std::move(resolution_codes), std::move(repair_step),
                                std::move(block_stage), std::move(block_position), std::move(depth_values),
                                population, mutants, mutate_prob, max_draws, repair_rounds, repair_min_step};
  return std::make_unique<hwnas::Variation>(std::move(config), std::move(limits),
                                            std::vector<int32_t>(anchors.data(), anchors.data() + anchors.size()),
                                            runs);
}

py::tuple variation_children(const hwnas::Variation& v, const py::object& parents_in, uint64_t seed) {
  const auto parents = int32_array("parents", parents_in);
  require_shape("parents", parents, {v.runs(), -1, v.S()});
  const int n_parents = static_cast<int>(parents.shape(1));
  const auto total = static_cast<py::ssize_t>(v.runs()) * v.population();
  py::array_t<int32_t> children(std::vector<py::ssize_t>{total, v.S()});
  py::array_t<double> costs(std::vector<py::ssize_t>{v.limits(), total});
  int64_t repaired = 0;
  const int32_t* src = parents.data();
  int32_t* out = children.mutable_data();
  double* cost = costs.mutable_data();
  {
    py::gil_scoped_release release;
    repaired = v.children(src, n_parents, seed, out, cost);
  }
  return py::make_tuple(children, costs, repaired);
}

py::tuple variation_repair(const hwnas::Variation& v, const py::object& genes_in, const py::object& runs_in,
                           uint64_t seed) {
  auto genes = py::array_t<int32_t, py::array::c_style>(int32_array("genes", genes_in));  // a copy to repair
  require_shape("genes", genes, {-1, v.S()});
  const auto runs = int32_array("runs", runs_in);
  require_shape("runs", runs, {genes.shape(0)});
  const int64_t n = genes.shape(0);
  py::array_t<double> costs(std::vector<py::ssize_t>{v.limits(), static_cast<py::ssize_t>(n)});
  int32_t* rows = genes.mutable_data();
  const int32_t* run = runs.data();
  double* cost = costs.mutable_data();
  int64_t repaired = 0;
  {
    py::gil_scoped_release release;
    repaired = v.repair(rows, run, n, seed, cost);
  }
  return py::make_tuple(genes, costs, repaired);
}

// ---------------------------------------------------------------------------------------------
// Training kernels

CArray<float> float32_nhwc(const char* name, const py::object& obj) {
  const auto a = CArray<float>::ensure(as_array(name, obj));
  if (!a) throw py::value_error(std::string(name) + " must be convertible to float32");
  if (a.ndim() != 4) throw py::value_error(std::string(name) + " must be 4-D [N, H, W, C], got shape " + shape_text(a));
  return a;
}

py::array_t<float> depthwise_weight_grad(const py::object& input_in, const py::object& grad_out_in, int64_t kernel,
                                         int64_t stride, int64_t padding, int threads) {
  const auto input = float32_nhwc("input", input_in), grad_out = float32_nhwc("grad_out", grad_out_in);
  const hwnas::DepthwiseShape shape{input.shape(0), input.shape(1), input.shape(2), input.shape(3),
                                    kernel, stride, padding, grad_out.shape(1), grad_out.shape(2)};
  if (grad_out.shape(0) != shape.batch || grad_out.shape(3) != shape.channels) {
    throw py::value_error("grad_out shape " + shape_text(grad_out) + " must match input " + shape_text(input) +
                          " in batch and channels");
  }
  hwnas::check_depthwise_shape(shape);
  py::array_t<float> out({shape.channels, kernel, kernel});
  const float* x = input.data();
  const float* g = grad_out.data();
  float* dst = out.mutable_data();
  {
    py::gil_scoped_release release;
    hwnas::depthwise_weight_grad(x, g, dst, shape, threads);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Errors

void raise_key_error(const hwnas::MissingKeysError& e) {
  py::object error = py::reinterpret_borrow<py::object>(PyExc_KeyError)(e.what());
  error.attr("missing_keys") = py::cast(e.keys());
  PyErr_SetObject(PyExc_KeyError, error.ptr());
}

void translate_errors(std::exception_ptr p) {
  try {
    if (p) std::rethrow_exception(p);
  } catch (const hwnas::MissingKeysError& e) {
    raise_key_error(e);
  } catch (const hwnas::FileNotFound& e) {
    py::set_error(PyExc_FileNotFoundError, e.what());
  } catch (const hwnas::IOError& e) {
    py::set_error(PyExc_OSError, e.what());
  } catch (const hwnas::FormatError& e) {
    py::set_error(PyExc_ValueError, e.what());
  } catch (const hwnas::InvalidArgument& e) {
    py::set_error(PyExc_ValueError, e.what());
  }
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "hwnas native core: latency tables, the compiled latency predictor and a training kernel.";
  py::register_exception_translator(translate_errors);

  py::class_<LatencyTable>(m, "Table", "Latency statistics per op key and the calibration predictors apply (files: hwnas.latency.lut_file).")
      .def(py::init<>())
      .def(
          "set",
          [](LatencyTable& t, const std::string& key, double mean, double median, double std, double p5, double p95,
             double min, int64_t n) { t.set(key, Stats{mean, median, std, p5, p95, min, n}); },
          py::arg("key"), py::arg("mean"), py::arg("median") = kNaN, py::arg("std") = kNaN, py::arg("p5") = kNaN,
          py::arg("p95") = kNaN, py::arg("min") = kNaN, py::arg("n") = 1)
      .def("set_many", &set_many, py::arg("keys"), py::arg("stats"), py::arg("n"))
      .def("get", [](const LatencyTable& t, const std::string& key) { return stats_dict(t.get(key)); },
           py::arg("key"))
      .def("__contains__", &LatencyTable::contains, py::arg("key"))
      .def("__len__", &LatencyTable::size)
      .def("keys", &LatencyTable::keys)
      .def("remove", &LatencyTable::remove, py::arg("key"))
      .def("missing", &LatencyTable::missing, py::arg("keys"))
      .def(
          "merge",
          [](LatencyTable& t, const LatencyTable& other, const std::string& on_conflict) {
            t.merge(other, conflict_policy(on_conflict));
          },
          py::arg("other"), py::arg("on_conflict") = "error")
      .def(
          "means",
          [](const LatencyTable& t, const std::vector<std::string>& keys) {
            const std::vector<double> means = t.means(keys);
            return py::array_t<double>(static_cast<py::ssize_t>(means.size()), means.data());
          },
          py::arg("keys"))
      .def("entry_arrays", &entry_arrays)
      .def(
          "set_calibration",
          [](LatencyTable& t, double scale, double offset, double per_op, double per_element, double per_param) {
            t.set_calibration(hwnas::Calibration{scale, offset, per_op, per_element, per_param});
          },
          py::arg("scale"), py::arg("offset"), py::arg("per_op") = 0.0, py::arg("per_element") = 0.0,
          py::arg("per_param") = 0.0)
      .def("clear_calibration", &LatencyTable::clear_calibration);

  py::class_<LatencyPredictor>(m, "Predictor", "A latency table compiled against a search space layout.")
      .def(py::init(&make_predictor), py::arg("table"), py::arg("resolutions"), py::arg("fixed_keys"),
           py::arg("block_keys"), py::arg("B"), py::arg("K"), py::arg("E"), py::arg("G"), py::arg("D"),
           py::arg("block_stage"), py::arg("block_position"), py::arg("depth_values"),
           py::arg("strict_resolutions") = std::vector<int>{},
           py::arg("fixed_io") = std::vector<std::vector<double>>{}, py::arg("block_io") = std::vector<double>{},
           py::arg("fixed_params") = std::vector<std::vector<double>>{},
           py::arg("block_params") = std::vector<double>{})
      .def_property_readonly("served_resolutions", &LatencyPredictor::served_resolutions)
      .def_property_readonly("calibration",
                             [](const LatencyPredictor& p) {
                               const hwnas::Calibration& c = p.calibration();
                               py::dict d;
                               d["scale"] = c.scale, d["offset"] = c.offset;
                               d["per_op"] = c.per_op, d["per_element"] = c.per_element;
                               d["per_param"] = c.per_param;
                               return d;
                             })
      .def_property_readonly("num_codes", &LatencyPredictor::num_codes)
      .def_property_readonly("dims",
                             [](const LatencyPredictor& p) {
                               py::dict d;
                               d["R"] = p.R(), d["B"] = p.B(), d["K"] = p.K();
                               d["E"] = p.E(), d["G"] = p.G(), d["D"] = p.D();
                               return d;
                             })
      .def("predict", &predict, py::arg("codes"), py::arg("threads") = 1)
      .def("expected", &expected, py::arg("pk"), py::arg("pe"), py::arg("pd"), py::arg("pr"))
      .def("dense", &dense);

  py::class_<hwnas::Variation>(m, "Variation",
                               "Children that fit every limit, from parents, for evolutionary search (see variation.h).")
      .def(py::init(&make_variation), py::keep_alive<1, 2>(), py::arg("predictors"), py::arg("bounds"),
           py::arg("anchors"), py::arg("sizes"), py::arg("resolution_codes"), py::arg("repair_step"), py::arg("B"),
           py::arg("G"), py::arg("block_stage"), py::arg("block_position"), py::arg("depth_values"),
           py::arg("population"), py::arg("mutants"), py::arg("mutate_prob"), py::arg("max_draws"),
           py::arg("repair_rounds"), py::arg("repair_min_step"))
      .def("children", &variation_children, py::arg("parents"), py::arg("seed"))
      .def("repair", &variation_repair, py::arg("genes"), py::arg("runs"), py::arg("seed"));

  m.def("depthwise_weight_grad", &depthwise_weight_grad, py::arg("input"), py::arg("grad_out"), py::arg("kernel"),
        py::arg("stride"), py::arg("padding"), py::arg("threads") = 1,
        "Weight gradient [C, K, K] of a depthwise convolution from its NHWC float32 input and output gradient.");
}
