from glob import glob

from setuptools import find_packages, setup

package_name = "cemssl_ik"


def data(dest: str, pattern: str) -> tuple[str, list[str]]:
    return (f"share/{package_name}/{dest}", sorted(glob(pattern)))


setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    # the training recipes, one per shipped model (cemssl-ik train --recipe NAME), and the prose
    # of docs/RESULTS.md read by `cemssl-ik bench report`
    package_data={package_name: ["recipes/*.yaml"], f"{package_name}.evaluation.report": ["RESULTS.template.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        data("launch", "launch/*.launch.py"),
        data("config", "config/*.yaml"),
        data("urdf", "urdf/*.urdf"),
        # weights + metadata; a CEMSSL run's resume state (NAME.state.safetensors) and the learning
        # curves (NAME.curves.json, not needed to load) stay out of the install
        (
            f"share/{package_name}/models",
            sorted(p for p in glob("models/*.safetensors") if not p.endswith(".state.safetensors"))
            + sorted(p for p in glob("models/*.json") if not p.endswith(".curves.json"))
            + ["models/README.md"],
        ),
    ],
    python_requires=">=3.10",
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="cemssl_ik maintainers",
    maintainer_email="maintainers@cemssl-ik.dev",
    description="Multi-solution inverse kinematics learned with conditional generative models (CEMSSL).",
    license="Apache-2.0",
    tests_require=["pytest"],
    entry_points={
        "console_scripts": [
            "cemssl-ik = cemssl_ik.cli:main",
            "analytic_ik_node = cemssl_ik.ros.analytic_ik_node:main",
            "ik_service_node = cemssl_ik.ros.ik_service_node:main",
            "moveit_reach_node = cemssl_ik.ros.moveit_reach_node:main",
            "sim_robot_node = cemssl_ik.ros.sim_robot_node:main",
            "learner_node = cemssl_ik.ros.learner_node:main",
        ],
    },
)
