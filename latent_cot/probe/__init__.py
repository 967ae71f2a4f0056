"""Look inside continuous thoughts: pure analyses over thought tensors, graphs and generated text.

Modules, each importable on its own:
  vocabulary     readouts, top tokens, nearest embeddings, distance to the vocabulary, decodings
  graph          the frontier analysis of thought readouts (the graphs themselves: latent_cot.data.graph)
  chains         the error categories of generated chains (`classify_chain`)
  interventions  zero / noise / shuffle / swap transformations of the slot inputs
  running        running a model: what a thought is per mode (`collect_thoughts`), and
                 generation with given slot inputs, accuracy under interventions
  inspection     `inspect_run`, every analysis above on one model, as an `InspectionReport`
  errors         `ProbeError`
Every public name of those modules is re-exported here, and `Graph` with its helpers.
"""
from latent_cot.data.compact import parse_fact  # the fact parser the chain analyses use, kept public here
from latent_cot.data.graph import GRAPH_FIELDS, Graph, node_token_ids
from latent_cot.probe.chains import (
    CHAIN_CATEGORIES, ChainCounts, answer_node, chain_quality, classify_chain, count_categories, split_generation,
)
from latent_cot.probe.errors import ProbeError
from latent_cot.probe.graph import FRONTIER_CATEGORIES, FrontierResult, frontier_analysis, frontier_masses
from latent_cot.probe.inspection import InspectionReport, inspect_run
from latent_cot.probe.interventions import INTERVENTIONS, intervene
from latent_cot.probe.running import Thoughts, collect_thoughts, generate_with_thoughts, intervention_accuracy
from latent_cot.probe.vocabulary import (
    ThoughtDecoding, VectorStats, VocabularyDistance, decode_thoughts, distance_to_vocabulary, nearest_embeddings,
    readout_probabilities, token_name, top_tokens, vocabulary_distance, vocabulary_ids,
)

__all__ = [
    "CHAIN_CATEGORIES", "ChainCounts", "answer_node", "chain_quality", "classify_chain", "count_categories", "parse_fact",
    "split_generation",
    "ProbeError",
    "FRONTIER_CATEGORIES", "GRAPH_FIELDS", "FrontierResult", "Graph", "frontier_analysis", "frontier_masses",
    "node_token_ids",
    "InspectionReport", "inspect_run",
    "INTERVENTIONS", "intervene",
    "Thoughts", "collect_thoughts", "generate_with_thoughts", "intervention_accuracy",
    "ThoughtDecoding", "VectorStats", "VocabularyDistance", "decode_thoughts", "distance_to_vocabulary",
    "nearest_embeddings", "readout_probabilities", "token_name", "top_tokens", "vocabulary_distance",
    "vocabulary_ids",
]
