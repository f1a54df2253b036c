# drrserve images on Debian 12, built by the same script as a developer machine
# (scripts/setup.sh) and installed with `cmake --install --component runtime`:
#   docker build --target cpu -t drrserve:cpu .    the CPU executor (the default target)
#   docker build --target gpu -t drrserve:gpu .    the CUDA executor; run it with the NVIDIA
#                                                  container runtime (docker run --gpus all ...)
# The runtime stage holds drrserve, drrctl and the shared libraries they load
# (deploy/runtime-packages.txt) and runs as a non-root user. scripts/check_image.sh checks, where
# Docker is absent, that those packages cover the binaries and that the installed tree runs.

FROM debian:bookworm AS build-cpu
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv sudo \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/setup.sh && cmake --install build --prefix /opt/drrserve --component runtime

# nvcc from NVIDIA's CUDA repository for Debian 12; the CUDA runtime is linked statically, so the
# image needs only the driver, which the NVIDIA container runtime mounts.
FROM debian:bookworm AS build-gpu
ARG CUDA_VERSION=12-6
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
      python3 python3-venv sudo \
    && curl -fsSLo /tmp/cuda-keyring.deb \
      https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
    && dpkg -i /tmp/cuda-keyring.deb && apt-get update \
    && apt-get install -y --no-install-recommends cuda-nvcc-${CUDA_VERSION} \
      cuda-cudart-dev-${CUDA_VERSION} \
    && rm -rf /var/lib/apt/lists/* /tmp/cuda-keyring.deb
ENV PATH=/usr/local/cuda/bin:${PATH}
WORKDIR /src
COPY . .
RUN scripts/setup.sh && cmake --install build --prefix /opt/drrserve --component runtime

FROM debian:bookworm AS runtime
COPY deploy/runtime-packages.txt /tmp/
RUN apt-get update \
    && grep -v '^#' /tmp/runtime-packages.txt | xargs apt-get install -y --no-install-recommends \
    && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
    && useradd --system --uid 10001 --home-dir /var/lib/drrserve --create-home drrserve
USER 10001
WORKDIR /var/lib/drrserve
EXPOSE 50051 9464
# The gRPC port accepts connections (Kubernetes probes ask the gRPC health service itself).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/50051"]
# Inside a container the listeners bind every interface, explicitly.
ENTRYPOINT ["drrserve", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
CMD ["--preload-phantom"]

FROM runtime AS gpu
COPY --from=build-gpu /opt/drrserve/ /usr/local/
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility

FROM runtime AS cpu
COPY --from=build-cpu /opt/drrserve/ /usr/local/
