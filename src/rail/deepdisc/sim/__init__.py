"""The scene simulator: mock populations, SEDs + IGM + filters, PSFs, rendering, presets.

The modules are imported one by one (``rail.deepdisc.sim.field.simulate_field``,
``rail.deepdisc.sim.population.sample_population``, ...); the package imports none of them,
so importing one module does not load the whole simulator. The spectral model (bands,
filters, SED libraries, dust, IGM, emission lines) is :mod:`rail.deepdisc.spectra`.
"""
