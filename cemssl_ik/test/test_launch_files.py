"""Static checks of launch/, config/ and package.xml that run everywhere (no launch system needed).

Every launch file parses and defines generate_launch_description(); it starts only executables
that setup.py installs, reads only config files that exist, and uses only arguments it declares
(each with a description); arguments it passes to our own included launch files are ones they
declare; every parameter in config/*.yaml is one its node declares; package.xml declares what the
code imports.  Where the launch system is installed, each launch file of this package is also
loaded and its description built.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml
from conftest import PACKAGE_ROOT

LAUNCH_DIR = PACKAGE_ROOT / "launch"
CONFIG_DIR = PACKAGE_ROOT / "config"
LAUNCH_FILES = sorted(LAUNCH_DIR.glob("*.launch.py"))

#: config file -> node module whose PARAMETERS table it sets
CONFIG_NODES = {
    "ik_service.yaml": "cemssl_ik.ros.ik_service_node",
    "analytic_ik.yaml": "cemssl_ik.ros.analytic_ik_node",
    "sim_robot.yaml": "cemssl_ik.ros.sim_robot_node",
    "learner.yaml": "cemssl_ik.ros.learner_node",
}


def _console_scripts() -> set[str]:
    tree = ast.parse((PACKAGE_ROOT / "setup.py").read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"[\w-]+ = [\w.]+:\w+", node.value):
            scripts.add(node.value.split(" = ")[0])
    return scripts


def _calls(tree: ast.AST, name: str):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            if (isinstance(f, ast.Name) and f.id == name) or (isinstance(f, ast.Attribute) and f.attr == name):
                yield node


def _kw(call: ast.Call, key: str):
    for k in call.keywords:
        if k.arg == key:
            return k.value
    return None


def _str(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _declared(tree: ast.AST) -> dict[str, ast.Call]:
    return {_str(c.args[0]): c for c in _calls(tree, "DeclareLaunchArgument") if c.args and _str(c.args[0])}


def _used(tree: ast.AST) -> set[str]:
    used = {_str(c.args[0]) for c in _calls(tree, "LaunchConfiguration") if c.args and _str(c.args[0])}
    # OpaqueFunction bodies read context.launch_configurations["name"] (bound to a local, e.g. cfg)
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "cfg":
            key = _str(node.slice)
            if key:
                used.add(key)
    return used


def _included_own_files(tree: ast.AST) -> list[tuple[str, set[str]]]:
    """(our launch file name, argument names passed) for each IncludeLaunchDescription of ours."""
    out = []
    for call in _calls(tree, "IncludeLaunchDescription"):
        src = ast.dump(call.args[0]) if call.args else ""
        if "'cemssl_ik'" not in src:
            continue
        names = re.findall(r"Constant\(value='([\w.]+\.launch\.py)'\)", src)
        passed: set[str] = set()
        args = _kw(call, "launch_arguments")
        if isinstance(args, ast.Call) and isinstance(args.func, ast.Attribute) and isinstance(args.func.value, ast.Dict):
            passed = {_str(k) for k in args.func.value.keys if _str(k)}
        out += [(n, passed) for n in names]
    return out


def test_there_are_launch_files_for_each_use():
    names = {p.name for p in LAUNCH_FILES}
    assert {"ik_service.launch.py", "analytic_ik.launch.py", "ur3_robot.launch.py", "ur3_gazebo.launch.py", "moveit.launch.py"} <= names


@pytest.mark.parametrize("path", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions, f"{path.name} has no generate_launch_description()"
    assert ast.get_docstring(tree), f"{path.name} has no module docstring saying how to run it"
    declared = _declared(tree)
    for name, call in declared.items():
        assert _kw(call, "description") is not None, f"{path.name}: argument {name!r} has no description"
    undeclared = _used(tree) - set(declared)
    assert not undeclared, f"{path.name} uses undeclared launch arguments {sorted(undeclared)}"
    scripts = _console_scripts()
    for call in _calls(tree, "Node"):
        if _str(_kw(call, "package")) == "cemssl_ik":
            exe = _str(_kw(call, "executable"))
            assert exe in scripts, f"{path.name} starts {exe!r}, which setup.py does not install ({sorted(scripts)})"
    for const in ast.walk(tree):
        s = _str(const)
        if s and s.endswith(".yaml") and "/" not in s:
            assert (CONFIG_DIR / s).is_file(), f"{path.name} refers to config/{s}, which does not exist"
    for name, passed in _included_own_files(tree):
        target = LAUNCH_DIR / name
        assert target.is_file(), f"{path.name} includes {name}, which is not in launch/"
        unknown = passed - set(_declared(ast.parse(target.read_text())))
        assert not unknown, f"{path.name} passes {sorted(unknown)} to {name}, which does not declare them"


def test_every_node_launch_file_takes_the_common_arguments():
    for name in ("ik_service.launch.py", "analytic_ik.launch.py"):
        declared = set(_declared(ast.parse((LAUNCH_DIR / name).read_text())))
        assert {"params_file", "namespace", "use_sim_time", "log_level"} <= declared, name


@pytest.mark.parametrize("config", sorted(p.name for p in CONFIG_DIR.glob("*.yaml")))
def test_config_parameters_are_declared_by_their_node(config: str):
    data = yaml.safe_load((CONFIG_DIR / config).read_text())
    if config == "controllers.yaml":  # the learner's robot interface per kind of arm
        from cemssl_ik.ros.launch_args import robot_interface

        for setup in data:
            entry = robot_interface(setup, str(CONFIG_DIR / config))
            assert entry["pose_source"] in ("topic", "fk") and entry["controller"].endswith("joint_trajectory_controller")
            assert bool(entry["pose_topic"]) == (entry["pose_source"] == "topic"), setup
        assert {"real", "mock", "gazebo", "sim"} <= set(data)
        with pytest.raises(ValueError, match="setup"):
            robot_interface("ur99", str(CONFIG_DIR / config))
        return
    if config == "safety.yaml":  # not node parameters: a SafetyConfig, which refuses unknown keys
        from cemssl_ik.safety import SafetyConfig

        SafetyConfig.from_yaml(CONFIG_DIR / config)
        return
    if config not in CONFIG_NODES:
        assert config == "moveit_kinematics.yaml", f"config/{config} is not mapped to a node here: add it to CONFIG_NODES"
        group = data["ur_manipulator"]
        assert group["kinematics_solver"] == "srv_kinematics_plugin/SrvKinematicsPlugin"
        assert group["kinematics_solver_service_name"] == "/cemssl_ik/get_ik"
        return
    assert list(data) == ["/**"], f"config/{config} must be keyed '/**' so it applies under any namespace, got {list(data)}"
    params = data["/**"]["ros__parameters"]
    module_name = CONFIG_NODES[config]
    if importlib.util.find_spec(module_name) is None:
        pytest.fail(f"config/{config} belongs to {module_name}, which does not exist")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        pytest.skip(f"{module_name} needs {exc.name}, not importable here")
    unknown = set(params) - set(module.PARAMETERS)
    assert not unknown, f"config/{config} sets parameters {sorted(unknown)} that {module_name} does not declare"


def test_package_xml_declares_what_the_code_imports():
    root = ET.parse(PACKAGE_ROOT / "package.xml").getroot()
    deps = {e.text for e in root if e.tag in ("exec_depend", "depend")}
    test_deps = {e.text for e in root if e.tag == "test_depend"}
    ros_packages = set()
    for path in list((PACKAGE_ROOT / "cemssl_ik").rglob("*.py")) + LAUNCH_FILES:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
            for name in names:
                top = name.split(".")[0]
                if top.endswith(("_msgs", "_srvs", "_interfaces")) or top in ("rclpy", "launch", "launch_ros", "tf2_ros", "ament_index_python", "moveit", "moveit_configs_utils"):
                    ros_packages.add(top)
    key = {"tf2_ros": "tf2_ros_py", "moveit": "moveit_py"}
    missing = {key.get(p, p) for p in ros_packages} - deps
    assert not missing, f"package.xml lacks exec_depend for {sorted(missing)}"
    assert {"launch_testing", "launch_testing_ros"} <= test_deps
    for integration in ("ur_robot_driver", "ur_simulation_gz", "ur_moveit_config", "control_msgs", "moveit_msgs"):
        assert integration in deps, integration


def _launch_available() -> bool:
    try:
        importlib.import_module("launch")
        importlib.import_module("launch_ros")
        from ament_index_python.packages import get_package_share_directory

        get_package_share_directory("cemssl_ik")
    except Exception:  # noqa: BLE001 - any missing piece means: not here
        return False
    return True


@pytest.mark.skipif(not _launch_available(), reason="the ROS 2 launch system (launch, launch_ros) is not installed here (no PyPI wheels); build it from source to run this")
@pytest.mark.parametrize("name", ["ik_service.launch.py", "analytic_ik.launch.py"])
def test_launch_description_builds_and_resolves(name: str):
    """Our node launch files load and their OpaqueFunction builds the node with the resolved arguments."""
    from cemssl_ik.ros.launch_args import node_parameters
    from launch import LaunchContext
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    ld = PythonLaunchDescriptionSource(str(LAUNCH_DIR / name)).get_launch_description(LaunchContext())
    args = {a.name: a for a in ld.get_launch_arguments()}
    assert {"params_file", "namespace", "use_sim_time", "log_level"} <= set(args)
    assert all(a.description for a in args.values())
    assert node_parameters("p.yaml", "true", {"model": ""}) == ["p.yaml", {"use_sim_time": True}]


def test_launch_argument_rules():
    from cemssl_ik.ros.launch_args import check_log_level, mock_hardware_argument, node_parameters, parse_bool

    # problem: a params file's model was always replaced by the launch default; now '' leaves it
    assert node_parameters("/share/ik.yaml", "false", {"model": ""}) == ["/share/ik.yaml", {"use_sim_time": False}]
    assert node_parameters("/share/ik.yaml", "True", {"model": "ur3_fkloss_position"}) == ["/share/ik.yaml", {"use_sim_time": True, "model": "ur3_fkloss_position"}]
    assert node_parameters("", "0") == [{"use_sim_time": False}]
    for good, value in (("true", True), ("1", True), ("ON", True), ("false", False), ("no", False)):
        assert parse_bool("x", good) is value
    with pytest.raises(ValueError, match="use_sim_time"):
        node_parameters("/p.yaml", "maybe")
    assert check_log_level("WARN") == "warn"
    with pytest.raises(ValueError, match="log_level"):
        check_log_level("verbose")
    assert mock_hardware_argument("humble") == "use_fake_hardware"
    assert mock_hardware_argument("jazzy") == mock_hardware_argument("kilted") == mock_hardware_argument("") == "use_mock_hardware"
