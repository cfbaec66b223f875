"""Release gates: what must hold before a release counts as good, and before a revision may deploy.

- ``spec``: ``spec.verification`` and ``spec.promotion`` read into values (field-named errors);
- ``templates``: ``{{.namespace}}``-style variables in metric queries;
- ``evaluate``: the sampling rules (Pass / Fail / NoData / Error, thresholds, the gate's
  verdict), pure functions of plain data;
- ``progress``: a gate's progress as it is kept in ``status.verification`` (so a restarted
  daemon resumes it);
- ``prometheus``: the Prometheus port (``/api/v1/query``, ``/api/v1/format_query``);
- ``runner``: the reconciler's hook that starts and samples a gate (and checks it before a deploy);
- ``conclude``: a verdict on the record, told once, then ``onFailure``.

The promotion guard itself lives in ``gitopsd.promotion``. This package's ``__init__`` imports
nothing, so ``gitopsd.spec`` can import ``gates.spec`` without pulling in the engine.
"""
