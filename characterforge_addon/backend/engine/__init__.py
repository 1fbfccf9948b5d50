"""The engine: a profile's pipelines loaded once and shared, identity adapters, ControlNets, memory
and speed (device, offload, compile, fused attention), previews, pictures in and metadata out.
May import families, models, core; never jobs or serving."""
