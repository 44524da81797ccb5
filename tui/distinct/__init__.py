"""Distinct visitors and distinct signups: HyperLogLog sketches beside the counts (README "Distinct visitors").

* :mod:`tui.distinct.sketch`: one sketch as bytes: build, union, estimate (Apache DataSketches);
* :mod:`tui.distinct.hll_format`: the strict check that stored bytes pass before they are decoded;
* :mod:`tui.distinct.batch`: a writer's distinct items since its last flush, as sketches;
* :mod:`tui.distinct.value`: one memcached value holding the sketches of many tracking ids.
"""
