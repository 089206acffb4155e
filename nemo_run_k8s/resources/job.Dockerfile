# The nemo_run_k8s job image: base -> runtime deps -> nemo_run_k8s -> user code -> bundles (last).
#
# run.build_image / `nemo-run-k8s build` prepares the build context (wheels made or downloaded on
# the host, because containers cannot reach a package index; the user's code directory; the
# bundles) and builds this recipe in two parts, split at the "bundle layer" line below:
#   1. everything above it, tagged nemo-run-k8s/env:<hash of base id, wheels, code>; reused
#      while those inputs are unchanged, and then never rebuilt or re-sent;
#   2. FROM that image, the bundle layer alone, tagged nemo-run-k8s/job:<hash of env + bundles>.
# So a config change rebuilds one tiny layer, whatever the size of the code directory.
#
# Any base with a python3 on PATH works: NGC-style images with torch in the system Python, images
# whose python3 is already a venv (images/cpu, uv or conda environments), and Debian images whose
# pip refuses system installs (PEP 668; a venv that still sees the base's packages is made there).
ARG BASE_IMAGE=nemo-run-k8s/cpu:local
FROM ${BASE_IMAGE}

# 1. Runtime dependencies of nemo_run_k8s (fiddle, cloudpickle, PyYAML and theirs), as wheels,
#    installed with pip: into python3's own venv when it is one; else into a new venv that sees
#    the system's packages (torch); else, when no venv can be made, into the system Python if its
#    pip allows that (no PEP 668 marker). Where none works the build stops and says what to do.
COPY wheels/deps/ /tmp/nemo_run_k8s/deps/
RUN set -u; \
    stop() { echo "nemo_run_k8s: cannot install its runtime wheels into the base image's python3" \
        "($(command -v python3), $(python3 -V 2>&1)): $*" >&2; exit 1; }; \
    py=python3; \
    if python3 -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)'; then \
        if python3 -m venv --system-site-packages /opt/nemo_run_k8s/venv >/tmp/venv.log 2>&1; then \
            py=/opt/nemo_run_k8s/venv/bin/python3; \
        else \
            rm -rf /opt/nemo_run_k8s/venv; \
            marker=$(python3 -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED; \
            [ ! -f "$marker" ] || stop "it is the system's Python, whose pip refuses installs" \
                "(PEP 668: $marker), and 'python3 -m venv' fails: $(tail -n 4 /tmp/venv.log | tr '\n' ' ')." \
                "Add the venv module to the base image (Debian/Ubuntu: apt-get install python3-venv)," \
                "or make a venv there and put it first on PATH" \
                "(RUN python3 -m venv --system-site-packages /opt/venv; ENV PATH=/opt/venv/bin:\$PATH)."; \
        fi; \
    fi; \
    "$py" -m pip --version >/dev/null 2>&1 || "$py" -m ensurepip --default-pip >/dev/null 2>&1 \
        || stop "$py has no pip and ensurepip cannot add one: install pip (or, on Debian/Ubuntu," \
            "python3-venv) into the base image."; \
    "$py" -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-index --no-deps \
        /tmp/nemo_run_k8s/deps/*.whl || stop "pip install failed (its output is above)."; \
    rm -rf /tmp/nemo_run_k8s/deps /tmp/venv.log
ENV PATH=/opt/nemo_run_k8s/venv/bin:$PATH \
    PYTHONUNBUFFERED=1

# 2. nemo_run_k8s itself (its own wheel, built on the host from the installed package).
COPY wheels/pkg/ /tmp/nemo_run_k8s/pkg/
RUN python3 -m pip install --quiet --no-cache-dir --disable-pip-version-check --no-index \
        --no-deps /tmp/nemo_run_k8s/pkg/*.whl \
    && rm -rf /tmp/nemo_run_k8s/pkg

# 3. How the job runs. Before the code, so a code change rebuilds nothing below it.
WORKDIR /workspace
ENV PYTHONPATH=/workspace
ARG NEMO_RUN_K8S_PYTHON=unknown
LABEL app.kubernetes.io/managed-by=nemo-run-k8s \
      nemo-run-k8s.io/python=${NEMO_RUN_K8S_PYTHON}
ENTRYPOINT ["python3", "-m", "nemo_run_k8s.runtime.entrypoint"]

# 4. The user's code directory (empty without one; .dockerignore honoured), importable from
#    /workspace. The environment's last step: a code change rebuilds this layer alone.
COPY code/ /workspace/

# --- bundle layer ---
COPY bundles/ /opt/nemo_run_k8s/bundles/
