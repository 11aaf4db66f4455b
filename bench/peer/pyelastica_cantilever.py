#!/usr/bin/env python3
"""The peer side of `lumen bench sim`: PyElastica's Cosserat rod on the shared cantilever.

A rod clamped at one end (position and first director), horizontal along +x, released
under gravity (-z), integrated with PyElastica's explicit position Verlet. Prints one JSON
object: the tip position at the final time, the step count and the wall time of the
stepping loop (after a warm-up that triggers numba's compilation).
"""
import argparse
import json
import sys
import time

import numpy as np
import elastica as ea


class Cantilever(ea.BaseSystemCollection, ea.Constraints, ea.Forcing, ea.Damping):
    pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--elements", type=int, required=True)
    p.add_argument("--length", type=float, required=True)
    p.add_argument("--radius", type=float, required=True, help="solid radius with the catheter's EI")
    p.add_argument("--density", type=float, required=True, help="density giving the catheter's mass per length")
    p.add_argument("--youngs", type=float, required=True)
    p.add_argument("--shear", type=float, required=True)
    p.add_argument("--gravity", type=float, default=9.81)
    p.add_argument("--damping", type=float, default=0.0, help="rate (1/s), as the analytical linear damper")
    p.add_argument("--dt", type=float, required=True)
    p.add_argument("--final-time", type=float, required=True)
    a = p.parse_args()

    sim = Cantilever()
    rod = ea.CosseratRod.straight_rod(
        a.elements, np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0]),
        a.length, a.radius, a.density, youngs_modulus=a.youngs, shear_modulus=a.shear)
    sim.append(rod)
    sim.constrain(rod).using(ea.OneEndFixedBC, constrained_position_idx=(0,), constrained_director_idx=(0,))
    sim.add_forcing_to(rod).using(ea.GravityForces, acc_gravity=np.array([0.0, 0.0, -a.gravity]))
    if a.damping > 0:
        sim.dampen(rod).using(ea.AnalyticalLinearDamper, uniform_damping_constant=a.damping, time_step=a.dt)
    sim.finalize()
    stepper = ea.PositionVerlet()
    steps = int(round(a.final_time / a.dt))
    t = 0.0
    warm = min(200, steps)
    for _ in range(warm):
        t = stepper.step(sim, t, a.dt)
    start = time.perf_counter()
    for _ in range(steps - warm):
        t = stepper.step(sim, t, a.dt)
    wall = time.perf_counter() - start
    tip = rod.position_collection[:, -1]
    finite = bool(np.all(np.isfinite(rod.position_collection)))
    json.dump({"tip": [float(v) for v in tip], "finite": finite, "steps": steps - warm,
               "wall_s": wall, "steps_per_s": (steps - warm) / wall if wall > 0 else None,
               "version": "pyelastica"}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
