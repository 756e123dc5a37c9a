// Exact decimal cost of an answer from the model's per-million prices: BigInt arithmetic, never floats.

const DECIMAL = /^(\d+)(?:\.(\d*))?$/;

// "0.15" -> { units: 15n, scale: 2 }, i.e. units / 10**scale.
function parse(text) {
  const match = DECIMAL.exec(String(text).trim());
  if (!match) throw new RangeError(`not a plain decimal price: ${text}`);
  const fraction = match[2] ?? "";
  return { units: BigInt(match[1] + fraction), scale: fraction.length };
}

function format({ units, scale }) {
  const digits = units.toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  return fraction ? `${whole}.${fraction}` : whole;
}

/**
 * cost = prompt_tokens * input_price / 1e6 + completion_tokens * output_price / 1e6, as a decimal
 * string ("0.0000425"), from the model object's `input_token_price_per_m` / `output_token_price_per_m`.
 */
export function answerCost(usage, model) {
  const input = parse(model.input_token_price_per_m);
  const output = parse(model.output_token_price_per_m);
  const scale = Math.max(input.scale, output.scale);
  const widen = (price) => price.units * 10n ** BigInt(scale - price.scale);
  const units = BigInt(usage.prompt_tokens) * widen(input) + BigInt(usage.completion_tokens) * widen(output);
  return format({ units, scale: scale + 6 });
}
