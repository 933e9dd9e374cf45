/**
 * Label and field selectors, parsed and matched as k8s.io/apimachinery/pkg/labels and /fields do.
 *
 * Label selector strings: comma-separated requirements (a comma inside parentheses belongs to a set):
 *   key=value  key==value  key!=value  key in (a,b)  key notin (a,b)  key  !key  key>1  key<1
 * `!=` and `notin` also match objects without the key; `in`, `=`, `>`, `<` need it. An empty selector matches
 * everything. Label selector objects (metav1.LabelSelector, in StatefulSets, PDBs, NetworkPolicies) use
 * matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist); `{}` matches everything, a missing one nothing.
 */
import { badRequest } from './errors.ts';
import { labelKeyErrors, labelValueErrors } from './validation.ts';

export type Operator = 'in' | 'notin' | 'exists' | '!' | '=' | '!=' | 'gt' | 'lt';

export interface Requirement {
  key: string;
  operator: Operator;
  values: string[];
}

export type Labels = Readonly<Record<string, string>> | undefined;

export function matchesRequirement(requirement: Requirement, labels: Labels): boolean {
  const has = labels !== undefined && Object.hasOwn(labels, requirement.key);
  const value = has ? labels![requirement.key]! : undefined;
  switch (requirement.operator) {
    case 'in':
    case '=':
      return has && requirement.values.includes(value!);
    case 'notin':
    case '!=':
      return !has || !requirement.values.includes(value!);
    case 'exists':
      return has;
    case '!':
      return !has;
    case 'gt':
    case 'lt': {
      if (!has || !/^-?\d+$/.test(value!)) return false;
      const actual = Number(value);
      const bound = Number(requirement.values[0]);
      return requirement.operator === 'gt' ? actual > bound : actual < bound;
    }
  }
}

export function matchesAll(requirements: readonly Requirement[], labels: Labels): boolean {
  return requirements.every((r) => matchesRequirement(r, labels));
}

/** Splits on commas outside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      terms.push(selector.slice(start, i));
      start = i + 1;
    }
  }
  terms.push(selector.slice(start));
  return terms;
}

function parseError(selector: string, why: string): Error {
  return badRequest(`unable to parse requirement: ${why} (in label selector ${JSON.stringify(selector)})`);
}

function checkKey(selector: string, key: string): void {
  const problems = labelKeyErrors(key);
  if (problems.length > 0) throw parseError(selector, `key: Invalid value: ${JSON.stringify(key)}: ${problems.join('; ')}`);
}

function checkValue(selector: string, key: string, value: string): void {
  const problems = labelValueErrors(value);
  if (problems.length > 0) throw parseError(selector, `values[0][${key}]: Invalid value: ${JSON.stringify(value)}: ${problems.join('; ')}`);
}

/** Parses a label selector string; throws a 400 Status naming the bad requirement. */
export function parseLabelSelector(selector: string): Requirement[] {
  const requirements: Requirement[] = [];
  if (selector.trim() === '') return requirements;
  for (const raw of splitTerms(selector)) {
    const term = raw.trim();
    if (term === '') throw parseError(selector, 'found \'\', expected: !, identifier, or \'end of string\'');
    let match: RegExpMatchArray | null;
    if ((match = term.match(/^!\s*([^\s!=<>(),]+)$/))) {
      checkKey(selector, match[1]!);
      requirements.push({ key: match[1]!, operator: '!', values: [] });
    } else if ((match = term.match(/^([^\s!=<>(),]+)\s+(in|notin)\s*\(([^()]*)\)$/))) {
      const key = match[1]!;
      checkKey(selector, key);
      const values = match[3]!.split(',').map((v) => v.trim());
      if (match[2] === 'in' && values.length === 1 && values[0] === '') throw parseError(selector, `for 'in', 'notin' operators, values set can't be empty`);
      const nonEmpty = values.length === 1 && values[0] === '' ? [] : values;
      for (const v of nonEmpty) checkValue(selector, key, v);
      requirements.push({ key, operator: match[2] as 'in' | 'notin', values: nonEmpty });
    } else if ((match = term.match(/^([^\s!=<>(),]+)\s*(==|=|!=)\s*([^\s!=<>(),]*)$/))) {
      const key = match[1]!;
      checkKey(selector, key);
      checkValue(selector, key, match[3]!);
      requirements.push({ key, operator: match[2] === '!=' ? '!=' : '=', values: [match[3]!] });
    } else if ((match = term.match(/^([^\s!=<>(),]+)\s*(>|<)\s*(-?\d+)$/))) {
      checkKey(selector, match[1]!);
      requirements.push({ key: match[1]!, operator: match[2] === '>' ? 'gt' : 'lt', values: [match[3]!] });
    } else if ((match = term.match(/^([^\s!=<>(),]+)$/))) {
      checkKey(selector, match[1]!);
      requirements.push({ key: match[1]!, operator: 'exists', values: [] });
    } else {
      throw parseError(selector, `${JSON.stringify(term)} is not a valid requirement`);
    }
  }
  return requirements;
}

export interface LabelSelectorObject {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** A metav1.LabelSelector as requirements; null for a missing selector (matches nothing). */
export function requirementsOf(selector: LabelSelectorObject | null | undefined): Requirement[] | null {
  if (selector === null || selector === undefined) return null;
  const out: Requirement[] = [];
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) out.push({ key, operator: '=', values: [value] });
  for (const expression of selector.matchExpressions ?? []) {
    const operator = ({ In: 'in', NotIn: 'notin', Exists: 'exists', DoesNotExist: '!' } as const)[expression.operator as 'In'];
    if (operator === undefined) continue;
    out.push({ key: expression.key, operator, values: [...(expression.values ?? [])] });
  }
  return out;
}

export function selectorObjectMatches(selector: LabelSelectorObject | null | undefined, labels: Labels): boolean {
  const requirements = requirementsOf(selector);
  return requirements !== null && matchesAll(requirements, labels);
}

/** The string form of a LabelSelector, as the scale subresource's status.selector and kubectl show it. */
export function formatSelector(selector: LabelSelectorObject | null | undefined): string {
  const requirements = requirementsOf(selector) ?? [];
  return requirements
    .map((r) => {
      switch (r.operator) {
        case '=':
          return `${r.key}=${r.values[0]}`;
        case 'in':
          return `${r.key} in (${[...r.values].sort().join(',')})`;
        case 'notin':
          return `${r.key} notin (${[...r.values].sort().join(',')})`;
        case 'exists':
          return r.key;
        case '!':
          return `!${r.key}`;
        default:
          return `${r.key}${r.operator === 'gt' ? '>' : '<'}${r.values[0]}`;
      }
    })
    .join(',');
}

// ------------------------------------------------------------------------------------------------------------------
// Field selectors
// ------------------------------------------------------------------------------------------------------------------

export interface FieldRequirement {
  field: string;
  operator: '=' | '!=';
  value: string;
}

/** Parses `metadata.name=x,status.phase!=Running`; every field must be one the resource supports. */
export function parseFieldSelector(selector: string, supported: readonly string[]): FieldRequirement[] {
  const out: FieldRequirement[] = [];
  if (selector.trim() === '') return out;
  for (const raw of selector.split(',')) {
    const match = raw.trim().match(/^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/);
    if (match === null) throw badRequest(`invalid selector: '${selector}'; can't understand '${raw}'`);
    const field = match[1]!;
    if (!supported.includes(field)) throw badRequest(`field label not supported: ${field}`);
    out.push({ field, operator: match[2] === '!=' ? '!=' : '=', value: match[3]!.trim() });
  }
  return out;
}

function fieldValue(object: unknown, path: string): string {
  let at: unknown = object;
  for (const part of path.split('.')) {
    if (at === null || typeof at !== 'object') return '';
    at = (at as Record<string, unknown>)[part];
  }
  if (at === undefined || at === null) return '';
  return String(at);
}

export function fieldsMatch(requirements: readonly FieldRequirement[], object: unknown): boolean {
  return requirements.every((r) => (fieldValue(object, r.field) === r.value) === (r.operator === '='));
}
