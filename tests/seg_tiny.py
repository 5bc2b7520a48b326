"""Tiny randomly initialised SAM, SAM 2, CLIPSeg and Grounding DINO models for the seg_bridge tests."""

import torch
import transformers
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer


def tiny_sam(seed=0):
  torch.manual_seed(seed)
  dim = 32
  encoder = ImageEncoderViT(img_size=1024, patch_size=16, embed_dim=dim, depth=1, num_heads=2, mlp_ratio=2.0,
                            out_chans=dim, qkv_bias=True, use_rel_pos=False, window_size=0, global_attn_indexes=())
  prompts = PromptEncoder(embed_dim=dim, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                          mask_in_chans=8)
  decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32,
                        transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2))
  return Sam(encoder, prompts, decoder, pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])


def save_like_the_hub(path, model, processor) -> str:
  """Saves a model and its processor to `path` as a Hub copy is laid out; returns the path."""
  model.save_pretrained(path)
  processor.save_pretrained(path)
  return str(path)


WORDS = ['dog', 'cat', 'cap', 'skateboard', 'a', 'photo', 'of']


def tiny_tokenizer():
  letters = sorted(set(''.join(WORDS)))
  tokens = ['<|startoftext|>', '<|endoftext|>'] + letters + [c + '</w>' for c in letters]
  merges = []
  for word in WORDS:  # Merge each word left to right into one token.
    piece = word[0]
    for i, c in enumerate(word[1:], start=1):
      right = c + '</w>' if i == len(word) - 1 else c
      merges.append((piece, right))
      piece += right
      tokens.append(piece)
  vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
  return transformers.CLIPTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)))


def save_tiny_clipseg(path):
  """A tiny random CLIPSeg with its processor, saved to `path` like a Hub copy."""
  torch.manual_seed(0)
  tokenizer = tiny_tokenizer()
  config = transformers.CLIPSegConfig(
      text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1,
                       pad_token_id=1),
      vision_config=dict(image_size=64, patch_size=16, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                         num_attention_heads=2),
      projection_dim=32, extract_layers=[1, 2], reduce_dim=16, decoder_num_attention_heads=2,
      decoder_intermediate_size=32)
  model = transformers.CLIPSegForImageSegmentation(config)
  image_processor = transformers.ViTImageProcessor(size={'height': 64, 'width': 64},
                                                   image_mean=[0.481, 0.458, 0.408], image_std=[0.269, 0.261, 0.276])
  processor = transformers.CLIPSegProcessor(image_processor=image_processor, tokenizer=tokenizer)
  return save_like_the_hub(path, model, processor)


def save_tiny_grounding_dino(path):
  """A tiny random Grounding DINO with its processor, saved to `path` like a Hub copy."""
  torch.manual_seed(0)
  vocab = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', '.', ',', 'skate', '##board'] + WORDS
  tokenizer = transformers.BertTokenizer(vocab={t: i for i, t in enumerate(dict.fromkeys(vocab))})
  config = transformers.GroundingDinoConfig(
      backbone_config=dict(model_type='swin', image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                           num_heads=[1, 1, 1, 1], window_size=4, out_indices=[2, 3, 4]),
      text_config=dict(model_type='bert', vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32, max_position_embeddings=64),
      d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
      encoder_attention_heads=2, decoder_attention_heads=2, encoder_n_points=2, decoder_n_points=2,
      num_queries=20, max_text_len=32)
  model = transformers.GroundingDinoForObjectDetection(config)
  image_processor = transformers.GroundingDinoImageProcessor(size={'shortest_edge': 64, 'longest_edge': 96})
  processor = transformers.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
  return save_like_the_hub(path, model, processor)


def tiny_hiera():
  """SAM 2's image encoder at its smallest: its config and the widths of its four stages."""
  dims = [8, 16, 32, 64]
  return transformers.Sam2HieraDetConfig(
      hidden_size=dims[0], blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=dims,
      num_attention_heads_per_stage=[1, 1, 1, 1], window_size_per_stage=[8, 4, 4, 4], global_attention_blocks=[3]), dims


def save_tiny_sam2(path):
  """A tiny random SAM 2 (transformers) with its processor, saved to `path` like a Hub copy."""
  torch.manual_seed(0)
  backbone, dims = tiny_hiera()
  config = transformers.Sam2Config(
      vision_config=dict(backbone_config=backbone, backbone_channel_list=dims[::-1], fpn_hidden_size=32),
      prompt_encoder_config=dict(hidden_size=32),
      mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32))
  return save_like_the_hub(path, transformers.Sam2Model(config),
                           transformers.Sam2Processor(image_processor=transformers.Sam2ImageProcessor()))


def save_tiny_sam3(path):
  """A tiny random SAM 3 (transformers; the shapes of transformers' own tests) with its processor."""
  torch.manual_seed(0)
  tokenizer = tiny_tokenizer()
  backbone = transformers.Sam3ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                        image_size=224, patch_size=14, window_size=8, global_attn_indexes=[0, 1])
  small = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64)
  config = transformers.Sam3Config(
      vision_config=transformers.Sam3VisionConfig(backbone_config=backbone, fpn_hidden_size=32, scale_factors=[2.0, 1.0]),
      text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, projection_dim=32,
                       num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32, bos_token_id=0,
                       eos_token_id=1, pad_token_id=1),
      geometry_encoder_config=dict(num_layers=1, mask_fuser_hidden_size=32, mask_fuser_num_layers=1, **small),
      detr_encoder_config=dict(num_layers=1, **small),
      detr_decoder_config=dict(num_layers=1, num_queries=5, **small),
      mask_decoder_config=dict(hidden_size=32, num_upsampling_stages=2))
  image_processor = transformers.Sam3ImageProcessor(size={'height': 224, 'width': 224})
  return save_like_the_hub(path, transformers.Sam3Model(config),
                           transformers.Sam3Processor(image_processor=image_processor, tokenizer=tokenizer))


def save_tiny_sam2_video(path):
  """A small random SAM 2 video model (transformers) with its processor, saved like a Hub copy: a tiny
  image encoder, the real width elsewhere (the memory attention assumes it)."""
  torch.manual_seed(0)
  backbone, dims = tiny_hiera()
  config = transformers.Sam2VideoConfig(
      vision_config=dict(backbone_config=backbone, backbone_channel_list=dims[::-1],
                         backbone_feature_sizes=[[64, 64], [32, 32], [16, 16]]),
      prompt_encoder_config=dict(image_size=256), image_size=256, memory_attention_rope_feat_sizes=[16, 16], memory_attention_num_layers=1,
      memory_attention_feed_forward_hidden_size=256, memory_fuser_num_layers=1)
  size = {'height': 256, 'width': 256}
  processor = transformers.Sam2VideoProcessor(image_processor=transformers.Sam2ImageProcessor(size=size),
                                              video_processor=transformers.Sam2VideoVideoProcessor(size=size))
  return save_like_the_hub(path, transformers.Sam2VideoModel(config), processor)
