"""How fast MusicGen-Melody generates on this machine, at the real model sizes, with random weights.

    python bench/musicgen.py --size small            # 300 M decoder, like facebook/musicgen-small
    python bench/musicgen.py --size melody --tokens 20   # 1.5 B, like facebook/musicgen-melody

Random weights cost the same per step as trained ones, so no download is needed. A real-size run
is slow on a CPU, so it generates only `--tokens` decoding steps (50 steps = 1 s of audio at 50 Hz)
with classifier-free guidance (batch 2, as the renderer runs) and extrapolates. It prints seconds
per generated second of audio, the real-time factor, and the ratio against the tiny debug model
measured in the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stemforge.audio.musicgen import build_debug_musicgen, load_musicgen  # noqa: E402

# Decoder shapes of the published checkpoints (config.json of each hub repo); text encoder T5-base,
# codec EnCodec 32 kHz with 4 codebooks of 2048 for all three.
SIZES: dict[str, dict] = {
    "small": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "ffn_dim": 4096},
    "medium": {"hidden_size": 1536, "num_hidden_layers": 48, "num_attention_heads": 24, "ffn_dim": 6144},
    "melody": {"hidden_size": 1536, "num_hidden_layers": 48, "num_attention_heads": 24, "ffn_dim": 6144},
}


def real_size_model(size: str):
    from transformers import (
        EncodecConfig,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    text = T5Config(d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12, vocab_size=32128)
    codec = EncodecConfig(
        sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], codebook_size=2048,
        num_filters=64, hidden_size=128, num_lstm_layers=2, use_causal_conv=False, pad_mode="constant",
        use_conv_shortcut=False, normalize=False,
    )
    decoder = MusicgenMelodyDecoderConfig(vocab_size=2048, max_position_embeddings=2048, num_codebooks=4,
                                          pad_token_id=2048, bos_token_id=2048, **SIZES[size])
    config = MusicgenMelodyConfig(text_encoder=text, audio_encoder=codec, decoder=decoder, chroma_length=235)
    model = MusicgenMelodyForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = 2048
    model.generation_config.pad_token_id = 2048
    return model


def time_generation(model, device: torch.device, tokens: int, text_len: int = 12) -> float:
    """Seconds for `tokens` decoding steps with CFG, after one short warm-up."""
    dtype = next(model.parameters()).dtype
    input_ids = torch.randint(2, model.config.text_encoder.vocab_size, (1, text_len), device=device)
    chroma = torch.zeros(1, 100, 12, device=device, dtype=dtype)
    chroma[..., 9] = 1
    kwargs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), input_features=chroma,
                  do_sample=True, guidance_scale=3.0, top_k=250)
    with torch.inference_mode():
        model.generate(**kwargs, max_new_tokens=4)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        model.generate(**kwargs, max_new_tokens=tokens)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--tokens", type=int, default=50, help="decoding steps to time (50 = 1 s of audio)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    frame_rate = 50.0

    with tempfile.TemporaryDirectory() as tmp:
        tiny = load_musicgen(str(build_debug_musicgen(Path(tmp) / "tiny")), device=str(device))
        tiny_seconds = time_generation(tiny.model, device, args.tokens)
    tiny_per_audio_second = tiny_seconds / (args.tokens / frame_rate)

    started = time.perf_counter()
    model = real_size_model(args.size).eval().to(device)
    if device.type == "cuda":
        model = model.half()
    build_seconds = time.perf_counter() - started
    decoder_params = sum(p.numel() for p in model.decoder.parameters())
    seconds = time_generation(model, device, args.tokens)
    per_audio_second = seconds / (args.tokens / frame_rate)

    print(f"device {device} ({torch.get_num_threads()} threads), size {args.size}: decoder "
          f"{decoder_params / 1e6:.0f} M params, built in {build_seconds:.1f} s")
    print(f"{args.tokens} steps with CFG in {seconds:.2f} s -> {per_audio_second:.1f} s per generated second "
          f"(real-time factor {1 / per_audio_second:.3f}x)")
    print(f"tiny debug model: {tiny_per_audio_second:.3f} s per generated second; "
          f"{args.size} is {per_audio_second / tiny_per_audio_second:.0f}x slower")
    loop = 4 * 4 * 60 / 80  # a 4-bar loop at 80 bpm
    per_stem = per_audio_second * (loop * 1.12 + 0.75 + 0.25)
    print(f"a 4-bar 80 bpm stem ({loop:.0f} s + lock margin): ~{per_stem / 60:.1f} min per stem, "
          f"~{3 * per_stem / 60:.1f} min for drums+bass+melody (no retries)")
    flops = 2 * decoder_params * 2 * frame_rate  # 2 FLOPs per weight, CFG batch 2, per audio second
    print(f"effective decoder throughput {flops / per_audio_second / 1e9:.1f} GFLOP/s "
          f"(audio.musicgen.CPU_FLOPS_PER_SECOND is the estimate the renderer prints from)")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.machine import reported

    with reported():
        main()
