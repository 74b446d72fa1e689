fn main() {
    // Exposes `Py_GIL_DISABLED` and friends as cfgs (see gil_cell.rs).
    pyo3_build_config::use_pyo3_cfgs();
}
