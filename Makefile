# SecureInfer tasks for people and CI. `make help` lists them.
# Rust targets need only cargo; docker-* need Docker with Compose v2; k8s-* need kind and kubectl.

SHELL       := /bin/bash
CARGO       ?= cargo
COMPOSE     ?= docker compose
KIND        ?= kind
KUBECTL     ?= kubectl
CLUSTER     ?= secureinfer
NAMESPACE   ?= secureinfer
IMAGE       ?= secureinfer:local
MODEL_NAME  ?= phi3.5:3.8b-mini-instruct-q4_K_M
URL         ?= http://localhost:8000

.DEFAULT_GOAL := help
.PHONY: help build run test test-postgres fmt lint ci validate bench \
        docker-build docker-up docker-down docker-logs ollama-pull health \
        k8s-up k8s-load k8s-deploy k8s-pull-model k8s-status k8s-logs k8s-forward k8s-down

help: ## list the targets
	@grep -hE '^[a-z0-9%-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# --- build, test, lint ---------------------------------------------------------------------

build: ## release binary at target/release/secureinfer
	$(CARGO) build --release -p secureinfer

run: ## serve with the settings in .env (development mode prints a demo tenant key)
	$(CARGO) run --release -p secureinfer -- serve

test: ## the whole test suite (SQLite)
	$(CARGO) test --workspace

test-postgres: ## the gateway integration suite again, on a PostgreSQL the tests start
	SECUREINFER_TEST_DATABASE=postgres $(CARGO) test -p secureinfer --test '*'

fmt: ## format the code
	$(CARGO) fmt --all

lint: ## clippy with warnings as errors, and the deployment files
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	bash deploy/validate.sh

validate: ## offline checks of k8s/, docker-compose.yml and the Dockerfile
	bash deploy/validate.sh

ci: ## exactly what CI runs
	bash .ci/run

bench: ## criterion benches of the detection core
	$(CARGO) bench -p secureinfer-guard

demo-%: ## an attack demo against an in-process gateway: demo-injection, demo-extraction, demo-tampering, demo-dos, demo-leak, demo-isolation
	$(CARGO) run --release -q -p secureinfer -- demo $*

# --- Docker Compose: gateway + Redis + Ollama ----------------------------------------------

docker-build: ## build the gateway image ($(IMAGE))
	docker build -t $(IMAGE) .

docker-up: ## start the stack in the background (needs ADMIN_API_KEY in .env)
	@grep -q '^ADMIN_API_KEY=.\{32,\}' .env 2>/dev/null || { \
	  echo "ADMIN_API_KEY=$$(openssl rand -hex 32)" >> .env; echo "wrote a new ADMIN_API_KEY to .env"; }
	$(COMPOSE) up -d --build

docker-down: ## stop the stack (volumes are kept)
	$(COMPOSE) down

docker-logs: ## follow the gateway's log
	$(COMPOSE) logs -f gateway

ollama-pull: ## pull MODEL_NAME into the shared model volume (first run only)
	MODEL_NAME=$(MODEL_NAME) $(COMPOSE) --profile tools run --rm ollama-pull

health: ## GET /health on $(URL)
	@curl -fsS $(URL)/health && echo

# --- Kubernetes (kind) ---------------------------------------------------------------------

k8s-up: ## create the local kind cluster
	$(KIND) create cluster --config k8s/kind-config.yaml

k8s-load: docker-build ## copy the gateway image into the kind nodes
	$(KIND) load docker-image $(IMAGE) --name $(CLUSTER)

k8s-deploy: k8s-load ## deploy everything; generates the Secret once (admin key, database password)
	$(KUBECTL) apply -f k8s/local/namespace.yaml
	@if ! $(KUBECTL) -n $(NAMESPACE) get secret secureinfer-secrets >/dev/null 2>&1; then \
	  pg="$$(openssl rand -hex 16)"; \
	  $(KUBECTL) -n $(NAMESPACE) create secret generic secureinfer-secrets \
	    --from-literal=ADMIN_API_KEY="$$(openssl rand -hex 32)" \
	    --from-literal=POSTGRES_PASSWORD="$$pg" \
	    --from-literal=DATABASE_URL="postgres://secureinfer:$$pg@postgres:5432/secureinfer"; \
	fi
	$(KUBECTL) apply -f k8s/local/configmap.yaml -f k8s/local/networkpolicy.yaml \
	  -f k8s/local/services.yaml -f k8s/local/postgres.yaml -f k8s/local/deployment-redis.yaml \
	  -f k8s/local/deployment-ollama.yaml -f k8s/local/deployment-api.yaml
	@echo "admin key: $(KUBECTL) -n $(NAMESPACE) get secret secureinfer-secrets -o jsonpath='{.data.ADMIN_API_KEY}' | base64 -d"

k8s-pull-model: ## pull MODEL_NAME in the Ollama pod, opening its egress only meanwhile
	$(KUBECTL) apply -f k8s/tools/networkpolicy-ollama-pull.yaml
	$(KUBECTL) -n $(NAMESPACE) exec deploy/ollama -- ollama pull $(MODEL_NAME); \
	  status=$$?; $(KUBECTL) delete -f k8s/tools/networkpolicy-ollama-pull.yaml; exit $$status

k8s-status: ## pods, services and policies in the namespace
	$(KUBECTL) -n $(NAMESPACE) get pods,svc,networkpolicy -o wide

k8s-logs: ## follow the gateway replicas' logs
	$(KUBECTL) -n $(NAMESPACE) logs -f -l app=secureinfer-api --max-log-requests 4

k8s-forward: ## forward localhost:8000 to the gateway service
	$(KUBECTL) -n $(NAMESPACE) port-forward svc/secureinfer-api 8000:8000

k8s-down: ## delete the kind cluster
	$(KIND) delete cluster --name $(CLUSTER)
