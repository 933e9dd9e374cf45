/**
 * apps/v1 StatefulSets: defaulting and validation as pkg/apis/apps does it, including the two rules a copied set
 * most often breaks: the selector must match the template's labels, and only some spec fields may change.
 */
import type { IStatefulSetSpec } from 'kubernetes-models/apps/v1/StatefulSetSpec';
import type { FieldError } from '../errors.ts';
import { deepEqual } from '../patch.ts';
import { defineResource, type KubeObject, type ResourceType } from '../resources.ts';
import { requirementsOf, selectorObjectMatches, type LabelSelectorObject } from '../selectors.ts';
import { forbiddenField, invalidField, isPlainObject, labelsErrors, requiredField, unsupportedField } from '../validation.ts';
import { defaultPodSpec, podSpecErrors, type PodSpec } from './pod-spec.ts';

export type StatefulSetSpec = IStatefulSetSpec;

const MUTABLE_SPEC_FIELDS = ['replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy', 'minReadySeconds'];
const IMMUTABLE_SPEC_MESSAGE =
  "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden";

export function labelSelectorErrors(selector: LabelSelectorObject | undefined, field: string, allowEmpty: boolean): FieldError[] {
  if (selector === undefined || !isPlainObject(selector)) return [requiredField(field)];
  const out = labelsErrors(selector.matchLabels, `${field}.matchLabels`);
  (selector.matchExpressions ?? []).forEach((expression, i) => {
    const at = `${field}.matchExpressions[${i}]`;
    if (!['In', 'NotIn', 'Exists', 'DoesNotExist'].includes(expression.operator)) {
      out.push(unsupportedField(`${at}.operator`, expression.operator, ['DoesNotExist', 'Exists', 'In', 'NotIn']));
    } else if ((expression.operator === 'In' || expression.operator === 'NotIn') && (expression.values ?? []).length === 0) {
      out.push(requiredField(`${at}.values`, 'must be specified when `operator` is \'In\' or \'NotIn\''));
    } else if ((expression.operator === 'Exists' || expression.operator === 'DoesNotExist') && (expression.values ?? []).length > 0) {
      out.push(forbiddenField(`${at}.values`, 'may not be specified when `operator` is \'Exists\' or \'DoesNotExist\''));
    }
  });
  if (!allowEmpty && out.length === 0 && (requirementsOf(selector) ?? []).length === 0) {
    out.push(invalidField(field, selector, 'empty selector is invalid for statefulset'));
  }
  return out;
}

function spec(object: KubeObject): StatefulSetSpec {
  return object.spec as StatefulSetSpec;
}

function withoutMutable(value: StatefulSetSpec): Record<string, unknown> {
  const copy = { ...value } as Record<string, unknown>;
  for (const field of MUTABLE_SPEC_FIELDS) delete copy[field];
  return copy;
}

const statefulsets = defineResource({
  group: 'apps',
  version: 'v1',
  kind: 'StatefulSet',
  resource: 'statefulsets',
  shortNames: ['sts'],
  nameRule: 'label',
  subresources: ['status', 'scale'],
  hasGeneration: true,
  defaults(object) {
    if (!isPlainObject(object.spec)) return;
    const s = spec(object);
    s.replicas ??= 1;
    s.podManagementPolicy ??= 'OrderedReady';
    s.updateStrategy ??= { type: 'RollingUpdate' };
    if (s.updateStrategy.type === 'RollingUpdate') s.updateStrategy.rollingUpdate ??= { partition: 0 };
    s.revisionHistoryLimit ??= 10;
    s.persistentVolumeClaimRetentionPolicy ??= { whenDeleted: 'Retain', whenScaled: 'Retain' };
    if (isPlainObject(s.template?.spec)) defaultPodSpec(s.template.spec as PodSpec);
  },
  prepareForCreate(object) {
    object.status = { replicas: 0, availableReplicas: 0 };
  },
  prepareForUpdate(object, old) {
    object.status = old.status;
  },
  validate(object) {
    if (!isPlainObject(object.spec)) return [requiredField('spec')];
    const s = spec(object);
    const out: FieldError[] = [];
    if (s.replicas !== undefined && (!Number.isInteger(s.replicas) || s.replicas < 0)) out.push(invalidField('spec.replicas', s.replicas, 'must be greater than or equal to 0'));
    if (!['OrderedReady', 'Parallel'].includes(s.podManagementPolicy ?? 'OrderedReady')) {
      out.push(unsupportedField('spec.podManagementPolicy', s.podManagementPolicy, ['OrderedReady', 'Parallel']));
    }
    if (!['RollingUpdate', 'OnDelete'].includes(s.updateStrategy?.type ?? 'RollingUpdate')) {
      out.push(unsupportedField('spec.updateStrategy.type', s.updateStrategy?.type, ['OnDelete', 'RollingUpdate']));
    }
    const selectorErrors = labelSelectorErrors(s.selector as LabelSelectorObject | undefined, 'spec.selector', false);
    out.push(...selectorErrors);
    const labels = s.template?.metadata?.labels;
    out.push(...labelsErrors(labels, 'spec.template.metadata.labels'));
    if (selectorErrors.length === 0 && !selectorObjectMatches(s.selector as LabelSelectorObject, labels)) {
      out.push(invalidField('spec.template.metadata.labels', labels ?? {}, '`selector` does not match template `labels`'));
    }
    if (!isPlainObject(s.template)) out.push(requiredField('spec.template'));
    else {
      out.push(...podSpecErrors(s.template.spec as PodSpec | undefined, 'spec.template.spec'));
      const restartPolicy = s.template.spec?.restartPolicy;
      if (restartPolicy !== undefined && restartPolicy !== 'Always') out.push(unsupportedField('spec.template.spec.restartPolicy', restartPolicy, ['Always']));
    }
    return out;
  },
  validateUpdate(object, old) {
    if (!isPlainObject(object.spec)) return [];
    return deepEqual(withoutMutable(spec(object)), withoutMutable(spec(old))) ? [] : [forbiddenField('spec', IMMUTABLE_SPEC_MESSAGE)];
  },
});

export const APPS_RESOURCES: readonly ResourceType[] = [statefulsets];
