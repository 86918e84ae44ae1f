"""The simulator: scenarios, the simulated line and sound cards, the demo (docs: README, Command line)."""

from callrec.sim.demo import run_demo  # noqa: I001 - after what it runs
from callrec.sim.run import run_simulation
from callrec.sim.scenario import Scenario, ScenarioError, ScenarioEvent, ScenarioFault, ScenarioLine, load_scenario
from callrec.sim.simulation import SIM_CARD_CHANNELS, Simulation, prepare

__all__ = ["SIM_CARD_CHANNELS", "Scenario", "ScenarioError", "ScenarioEvent", "ScenarioFault", "ScenarioLine",
           "Simulation", "load_scenario", "prepare", "run_demo", "run_simulation"]
