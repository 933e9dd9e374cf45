/**
 * Minimal Reflect metadata polyfill, imported for its side effect before `@peculiar/x509`.
 *
 * Why: @peculiar/x509 2.x registers its algorithm providers with tsyringe, and tsyringe throws at
 * import time unless `Reflect.getMetadata` exists ("tsyringe requires a reflect polyfill").
 * `reflect-metadata` is not a dependency of this project, and the local platform must need nothing
 * but Node. tsyringe only calls getMetadata / getOwnMetadata / defineMetadata, and x509 ships no
 * `design:*` metadata, so a small WeakMap-backed implementation is enough.
 *
 * If a real polyfill (reflect-metadata, core-js) was loaded first, this module does nothing, so
 * adding one later is safe. Replace this file with `import 'reflect-metadata'` once it is a dependency.
 */

type MetadataMap = Map<unknown, unknown>;

const store = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();

function ownMap(target: object, propertyKey: PropertyKey | undefined, create: boolean): MetadataMap | undefined {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(propertyKey);
  if (!map && create) {
    map = new Map();
    byProperty.set(propertyKey, map);
  }
  return map;
}

function assertObject(target: unknown): asserts target is object {
  if ((typeof target !== 'object' && typeof target !== 'function') || target === null) {
    throw new TypeError('Reflect metadata target must be an object');
  }
}

const api = {
  defineMetadata(key: unknown, value: unknown, target: unknown, propertyKey?: PropertyKey): void {
    assertObject(target);
    ownMap(target, propertyKey, true)!.set(key, value);
  },
  hasOwnMetadata(key: unknown, target: unknown, propertyKey?: PropertyKey): boolean {
    assertObject(target);
    return ownMap(target, propertyKey, false)?.has(key) ?? false;
  },
  getOwnMetadata(key: unknown, target: unknown, propertyKey?: PropertyKey): unknown {
    assertObject(target);
    return ownMap(target, propertyKey, false)?.get(key);
  },
  // Like reflect-metadata, the non-own variants walk the prototype chain (class inheritance).
  hasMetadata(key: unknown, target: unknown, propertyKey?: PropertyKey): boolean {
    assertObject(target);
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      if (ownMap(t, propertyKey, false)?.has(key)) return true;
    }
    return false;
  },
  getMetadata(key: unknown, target: unknown, propertyKey?: PropertyKey): unknown {
    assertObject(target);
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const map = ownMap(t, propertyKey, false);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  },
  metadata(key: unknown, value: unknown) {
    return (target: object, propertyKey?: PropertyKey): void => {
      api.defineMetadata(key, value, target, propertyKey);
    };
  },
};

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect['getMetadata'] !== 'function') {
  for (const [name, fn] of Object.entries(api)) {
    if (typeof reflect[name] !== 'function') {
      Object.defineProperty(Reflect, name, { value: fn, writable: true, configurable: true, enumerable: false });
    }
  }
}

export {};
